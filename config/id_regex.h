#pragma once

// The regex dialect of context.id_pattern and context.user_id.pattern, shared by the config
// validator and the matcher in filters/ so that --validate accepts exactly what the proxy runs.

#include <algorithm>
#include <cstddef>
#include <regex>
#include <string_view>
#include <vector>

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

// Repetitions are bounded as RE2 bounds them: a count ("{n}", "{n,}", "{n,m}") over 1000 is
// refused, and so is a repetition whose count, multiplied by the counts of the repetitions
// around it (a group's, or one stacked on it as in "a{2}{3}"), exceeds 1000. libstdc++ compiles
// X{n} by copying X n times; for some X (an empty one, "a{0}" or "(?:)") the time grows with
// the square of the copies: "]{0}{16000}" takes a second, "a{0}{30}{30}{30}" four seconds, though
// neither reaches the engine's own limit of 100000 states. libstdc++ also reads counts and
// back-reference numbers ("\12") into a long without an overflow check (undefined behaviour):
// those over 1000 are refused before it reads them (the polynomial matcher refuses
// back-references anyway). Digits elsewhere (in a class, after an escaped brace) are characters
// to match, except that a run of more than 9 after '{', ',' or a backslash is refused wherever
// it stands: a second guard against the overflow that does not rely on reading the structure.
inline constexpr size_t kIdRegexMaxRepeat = 1000;

// Why std::regex must not be given the pattern, or an empty view when it may be.
inline std::string_view idRegexLimitExceeded(std::string_view pattern) {
  constexpr size_t kOver = kIdRegexMaxRepeat + 1;
  size_t i = 0;
  auto digit = [&]() { return i < pattern.size() && pattern[i] >= '0' && pattern[i] <= '9'; };
  // Reads the digits at i (no digit reads as 0), saturating above the bound.
  auto number = [&]() {
    size_t value = 0;
    for (; digit(); ++i)
      value = std::min(value * 10 + static_cast<size_t>(pattern[i] - '0'), kOver);
    return value;
  };
  // What an escape at i (just after its backslash) covers beyond the backslash: "\cX" takes
  // the X with it, whatever X is; anything else one character.
  auto escaped = [&]() { return i + 1 < pattern.size() && pattern[i] == 'c' ? 2 : 1; };
  // Per open group: the most copies anything inside it is made into. `last` is that figure for
  // the item a quantifier would apply to (0 at the start of an alternative: nothing to repeat).
  std::vector<size_t> groups{1};
  size_t last = 0;
  while (i < pattern.size()) {
    const char c = pattern[i++];
    if (c == '\\') {
      if (digit()) {
        if (number() > kIdRegexMaxRepeat) return "a back-reference number over 1000";
      } else {
        i += escaped();
      }
      last = 1;
    } else if (c == '[') {
      // To the closing bracket, which no ']' escapes in ECMAScript but a backslash does.
      while (i < pattern.size() && pattern[i] != ']') {
        if (pattern[i++] == '\\') i += escaped();
      }
      ++i;
      last = 1;
    } else if (c == '(') {
      groups.push_back(1);
      last = 0;
    } else if (c == ')') {
      last = 1;  // unless it closes a group (an unbalanced one std::regex refuses)
      if (groups.size() > 1) {
        last = groups.back();
        groups.pop_back();
      }
      groups.back() = std::max(groups.back(), last);
    } else if (c == '|') {
      last = 0;
    } else if (c == '{') {
      size_t copies = std::max<size_t>(1, number());
      if (i < pattern.size() && pattern[i] == ',') {
        ++i;
        copies = std::max(copies, number());
      }
      if (i < pattern.size() && pattern[i] == '}') ++i;
      if (copies > kIdRegexMaxRepeat || last * copies > kIdRegexMaxRepeat) {
        return "a repetition count over 1000 (the counts of nested repetitions multiply)";
      }
      last = std::max<size_t>(1, last) * copies;
      groups.back() = std::max(groups.back(), last);
    } else if (c != '*' && c != '+' && c != '?') {
      last = 1;  // a character, '.', '^' or '$'; quantifiers without a count copy nothing
    }
  }
  // Last, deliberately cruder than the reading of the structure above, so that no slip in
  // that reading can let an overflow through: no run of more than 9 digits after '{', ',' or a
  // backslash, wherever it stands.
  size_t run = 0;
  for (size_t k = 0; k < pattern.size(); ++k) {
    if (pattern[k] < '0' || pattern[k] > '9') {
      run = 0;
    } else if (run > 0 ||
               (k > 0 && std::string_view("{,\\").find(pattern[k - 1]) != std::string_view::npos)) {
      if (++run > 9) return "a number of more than 9 digits";
    }
  }
  return {};
}

}  // namespace viscount
