#pragma once
// Stable, dependency-free hashing for rule tags, chain and set names (FNV-1a, 64 bit). Not
// cryptographic: it only has to be stable across runs and builds.
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace hostscope::policy {

class Hasher {
 public:
  // Length-prefixed so ("ab","c") and ("a","bc") differ.
  Hasher& add(std::string_view s) {
    mix(std::to_string(s.size()));
    mix(":");
    mix(s);
    return *this;
  }
  uint64_t value() const { return h_; }
  std::string hex(size_t digits) const { return fmt::format("{:016x}", h_).substr(0, digits); }

 private:
  void mix(std::string_view s) {
    for (unsigned char c : s) {
      h_ ^= c;
      h_ *= 0x100000001b3ULL;
    }
  }
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

inline std::string hash_hex(std::string_view s, size_t digits) { return Hasher().add(s).hex(digits); }

}  // namespace hostscope::policy
