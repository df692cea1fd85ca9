#pragma once

// The regex dialect of context.id_pattern and context.user_id.pattern, shared by the config
// validator and the matcher in filters/ so that --validate accepts exactly what the proxy runs.

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

// libstdc++ reads a repetition count ("{n}", "{n,m}") or a back-reference number ("\\n") into a
// long without checking for overflow, which is undefined behaviour. A pattern with a run of more
// than 9 digits after '{', ',' or a backslash is refused before std::regex sees it (no id
// pattern needs one: the engine refuses patterns of more than 100000 states anyway). Digits
// elsewhere are characters to match.
inline constexpr size_t kIdRegexMaxNumberDigits = 9;
inline constexpr std::string_view kIdRegexNumberTooLong =
    "a count or back-reference of more than 9 digits";

inline bool idRegexNumbersFit(std::string_view pattern) {
  size_t run = 0;       // digits in a row
  char before_run = 0;  // what came before them
  char previous = 0;
  for (char c : pattern) {
    if (c >= '0' && c <= '9') {
      if (run++ == 0) before_run = previous;
      const bool number = before_run == '{' || before_run == ',' || before_run == '\\';
      if (number && run > kIdRegexMaxNumberDigits) return false;
    } else {
      run = 0;
    }
    previous = c;
  }
  return true;
}

}  // namespace viscount
