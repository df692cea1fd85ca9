#include "filters/id_pattern.h"

#include <limits>
#include <regex>

#include "config/id_regex.h"

namespace viscount {

struct IdPattern::Regex {
  std::regex re;
};

namespace {

constexpr size_t kUnbounded = std::numeric_limits<size_t>::max();
constexpr auto kRegexFlags = kIdRegexFlags;
// Where the matcher may recurse per character, longer values are refused, not matched.
constexpr size_t kRegexMaxInput = kIdRegexBoundedStack ? kUnbounded : size_t{4096};

struct ClassShape {
  std::string_view bracket;  // "[...]" including both brackets
  size_t min_length = 1;
  size_t max_length = 1;
};

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

bool parseCount(std::string_view p, size_t& i, size_t& out) {
  size_t start = i;
  size_t value = 0;
  while (i < p.size() && isDigit(p[i])) {
    if (i - start >= 9) return false;  // beyond any sensible id length; let std::regex judge
    value = value * 10 + static_cast<size_t>(p[i] - '0');
    ++i;
  }
  out = value;
  return i > start;
}

// Recognises `^?[class]quantifier?$?` and nothing else. It only has to find where the bracket
// expression ends; what the class contains is settled by std::regex itself (see compile), so
// any construct this scanner is unsure about simply means "not the fast shape".
std::optional<ClassShape> parseSingleClass(std::string_view p) {
  size_t i = 0;
  if (i < p.size() && p[i] == '^') ++i;
  if (i >= p.size() || p[i] != '[') return std::nullopt;
  size_t open = i++;
  if (i < p.size() && p[i] == '^') ++i;
  // ECMAScript "[]" and "[^]" are the empty and the full class; rare enough to leave to regex.
  if (i < p.size() && p[i] == ']') return std::nullopt;
  while (i < p.size() && p[i] != ']') {
    // "[[:alpha:]]" and friends are libstdc++ extensions with their own closing rules.
    if (p[i] == '[') return std::nullopt;
    if (p[i] == '\\') {
      // "\c" eats the following character whatever it is, even ']'.
      if (i + 1 >= p.size() || p[i + 1] == 'c') return std::nullopt;
      i += 2;
      continue;
    }
    ++i;
  }
  if (i >= p.size()) return std::nullopt;
  ClassShape shape;
  shape.bracket = p.substr(open, i + 1 - open);
  ++i;
  if (i < p.size()) {
    switch (p[i]) {
      case '+':
        shape.max_length = kUnbounded;
        ++i;
        break;
      case '*':
        shape.min_length = 0;
        shape.max_length = kUnbounded;
        ++i;
        break;
      case '?':
        shape.min_length = 0;
        ++i;
        break;
      case '{': {
        ++i;
        if (!parseCount(p, i, shape.min_length)) return std::nullopt;
        shape.max_length = shape.min_length;
        if (i < p.size() && p[i] == ',') {
          ++i;
          shape.max_length = kUnbounded;
          if (i < p.size() && isDigit(p[i]) && !parseCount(p, i, shape.max_length)) {
            return std::nullopt;
          }
        }
        if (i >= p.size() || p[i] != '}') return std::nullopt;
        ++i;
        break;
      }
      default:
        break;
    }
  }
  if (i < p.size() && p[i] == '$') ++i;
  if (i != p.size() || shape.min_length > shape.max_length) return std::nullopt;
  return shape;
}

}  // namespace

std::optional<IdPattern> IdPattern::compile(const std::string& ecmascript_regex,
                                            std::string* error) {
  IdPattern pattern;
  if (const std::string_view why = idRegexLimitExceeded(ecmascript_regex); !why.empty()) {
    if (error) *error = "invalid regular expression: " + std::string(why);
    return std::nullopt;
  }
  try {
    // Always compiled in full, so a bad pattern is reported the same way whichever path runs.
    std::regex full(ecmascript_regex, kRegexFlags);
    auto shape = parseSingleClass(ecmascript_regex);
    if (!shape) {
      pattern.fallback_ = std::make_shared<const Regex>(Regex{std::move(full)});
      return pattern;
    }
    // Asking std::regex which single bytes the class accepts gives the table exactly the
    // semantics of the full expression (escapes, ranges, \w, signed chars), by construction.
    std::regex bracket(std::string(shape->bracket), kRegexFlags);
    for (size_t b = 0; b < pattern.rejects_.size(); ++b) {
      char c = static_cast<char>(b);
      pattern.rejects_[b] = std::regex_match(&c, &c + 1, bracket) ? 0 : 1;
    }
    pattern.min_length_ = shape->min_length;
    pattern.max_length_ = shape->max_length;
    return pattern;
  } catch (const std::regex_error& e) {
    if (error) *error = std::string("invalid regular expression: ") + e.what();
    return std::nullopt;
  }
}

bool IdPattern::matchesRegex(std::string_view value) const {
  if (value.size() > kRegexMaxInput) return false;
  return std::regex_match(value.begin(), value.end(), fallback_->re);
}

}  // namespace viscount
