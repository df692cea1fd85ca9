#pragma once

// The regex dialect of context.id_pattern and context.user_id.pattern, shared by the config
// validator and the matcher in filters/ so that --validate accepts exactly what the proxy runs.

#include <algorithm>
#include <cstddef>
#include <regex>
#include <string_view>

namespace viscount {

// libstdc++'s default matcher recurses once per input character and overflows the stack on
// inputs of a few tens of KiB (header values can be that long); its polynomial mode matches in
// bounded stack at the price of back-references.
#if defined(__GLIBCXX__)
inline constexpr auto kIdRegexFlags = std::regex::ECMAScript | std::regex_constants::__polynomial;
inline constexpr bool kIdRegexBoundedStack = true;
#else
inline constexpr auto kIdRegexFlags = std::regex::ECMAScript;
inline constexpr bool kIdRegexBoundedStack = false;
#endif

// Repetition counts ("{n}", "{n,}", "{n,m}") are capped at 1000, as RE2 caps them. libstdc++
// compiles X{n} by copying X n times, for some X in time that grows with n squared
// ("]{0}{16000}" takes a second to compile, "]{0}{29141}" several), and it reads a count into a
// long without an overflow check, which is undefined behaviour. Digits after a backslash are a
// back-reference number, refused later by the polynomial matcher but read the same unchecked way
// first: they are held to the same bound. Digits elsewhere (in a class, after an escaped brace)
// are characters to match.
inline constexpr size_t kIdRegexMaxNumber = 1000;
inline constexpr std::string_view kIdRegexNumberTooLarge =
    "a repetition count or back-reference number over 1000";

inline bool idRegexNumbersFit(std::string_view pattern) {
  size_t i = 0;
  // Reads the digits at i (no digit reads as 0), saturating above the bound.
  auto number_fits = [&]() {
    size_t value = 0;
    for (; i < pattern.size() && pattern[i] >= '0' && pattern[i] <= '9'; ++i)
      value = std::min(value * 10 + static_cast<size_t>(pattern[i] - '0'), kIdRegexMaxNumber + 1);
    return value <= kIdRegexMaxNumber;
  };
  bool in_class = false;   // inside [...]
  bool in_braces = false;  // inside a count's {...}
  while (i < pattern.size()) {
    const char c = pattern[i++];
    if (c == '\\') {
      if (i < pattern.size() && pattern[i] >= '0' && pattern[i] <= '9') {
        if (!number_fits()) return false;
      } else {
        ++i;  // the escaped character, whatever it is
      }
    } else if (in_class) {
      in_class = c != ']';
    } else if (c == '[') {
      in_class = true;
    } else if (c == '{' || (c == ',' && in_braces)) {
      in_braces = true;
      if (!number_fits()) return false;
    } else if (c == '}') {
      in_braces = false;
    }
  }
  return true;
}

}  // namespace viscount
