#pragma once
// Expected-style results for the OS boundary. `Result<T>` holds a value or an Error; it is shaped like
// std::expected (has_value, value, error, operator bool, operator*) so it can become an alias of it.
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace hostscope {

// An error names the object and the operation, and carries errno when the OS gave one:
//   "map tcp_socks update failed: ENOSPC (No space left on device)"
struct Error {
  std::string message;
  int err = 0;  // positive errno, 0 when not an OS error

  std::string str() const {
    if (err == 0) return message;
    return fmt::format("{}: {} ({})", message, errno_name(err), std::strerror(err));
  }
  static const char* errno_name(int e);
};

inline Error make_error(std::string msg, int err = 0) { return Error{std::move(msg), err < 0 ? -err : err}; }
template <typename... Args>
Error errorf(fmt::format_string<Args...> f, Args&&... args) {
  return Error{fmt::format(f, std::forward<Args>(args)...), 0};
}
// errno-carrying variant: errorf_errno(errno, "open {}", path)
template <typename... Args>
Error errorf_errno(int err, fmt::format_string<Args...> f, Args&&... args) {
  return Error{fmt::format(f, std::forward<Args>(args)...), err < 0 ? -err : err};
}

struct Unexpected {
  Error error;
};
inline Unexpected unexpected(Error e) { return Unexpected{std::move(e)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::in_place_index<0>, std::move(v)) {}
  Result(Unexpected u) : v_(std::in_place_index<1>, std::move(u.error)) {}
  Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Unexpected u) : err_(std::move(u.error)), ok_(false) {}
  Result(Error e) : err_(std::move(e)), ok_(false) {}
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }

 private:
  Error err_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace hostscope
