#pragma once

// Shared by the fuzz targets: invariant checks that stop the run (libFuzzer then keeps the input
// as a crash reproducer), and per-input choices drawn from the input bytes themselves, so a
// reproducer always replays the same way and the seed files stay plain HTTP, YAML or ids.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace viscount::fuzz {

[[noreturn]] inline void invariantFailed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: invariant failed: %s\n", file, line, what);
  std::abort();
}

// Printable, for the message printed before an invariant fails.
inline std::string escaped(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", u);
      out.append(hex);
    }
  }
  return out;
}

// Per-input decisions (trust, limits, where the bytes are split). Seeded with a hash of the
// input: the same bytes always make the same decisions, and every mutation makes new ones.
class Choices {
 public:
  Choices(const uint8_t* data, size_t size) {
    uint64_t h = 0xcbf29ce484222325u;  // FNV-1a
    for (size_t i = 0; i < size; ++i) {
      h ^= data[i];
      h *= 0x100000001b3u;
    }
    state_ = h | 1;
  }

  uint64_t next() {  // xorshift64*
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545f4914f6cdd1du;
  }
  // A number in [0, n).
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
  bool oneIn(uint64_t n) { return below(n) == 0; }

 private:
  uint64_t state_;
};

// VISCOUNT_FUZZ_TRACE=1 prints what each side saw, for reading a reproducer.
inline bool tracing() {
  static const bool on = std::getenv("VISCOUNT_FUZZ_TRACE") != nullptr;
  return on;
}

}  // namespace viscount::fuzz

#define FUZZ_TRACE(...)                                                 \
  do {                                                                  \
    if (::viscount::fuzz::tracing()) std::fprintf(stderr, __VA_ARGS__); \
  } while (false)
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) ::viscount::fuzz::invariantFailed(#cond, __FILE__, __LINE__); \
  } while (false)
#define FUZZ_FAIL(what) ::viscount::fuzz::invariantFailed(what, __FILE__, __LINE__)
