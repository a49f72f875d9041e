#pragma once
// Expected-style result for the policy library's OS boundary (running iptables, reading state).
// Shaped like std::expected (has_value, value, error, operator bool); kept here because policy/
// must not depend on agent/ (agent/util/result.h has the agent's equivalent).
#include <string>
#include <utility>
#include <variant>

namespace hostscope::policy {

struct Failure {
  std::string message;  // names the object and the operation: "iptables-restore (ipv4) failed: ..."
};

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T v) : v_(std::in_place_index<0>, std::move(v)) {}
  Expected(Failure f) : v_(std::in_place_index<1>, std::move(f)) {}
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const std::string& error() const { return std::get<1>(v_).message; }

 private:
  std::variant<T, Failure> v_;
};

struct Done {};
using Outcome = Expected<Done>;

}  // namespace hostscope::policy
