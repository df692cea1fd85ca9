#pragma once

// The regex dialect of context.id_pattern and context.user_id.pattern, shared by the config
// validator and the matcher in filters/ so that --validate accepts exactly what the proxy runs.

#include <regex>

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

}  // namespace viscount
