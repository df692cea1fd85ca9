#pragma once

// The check an incoming id must pass before it is believed (context.id_pattern and
// context.user_id.pattern). Configured as an ECMAScript regular expression, but almost every
// real pattern is one character class with a length bound, e.g. "^[A-Za-z0-9._:-]{1,128}$".
// Those compile to a 256-entry byte table plus bounds, which is what runs per request; only
// other shapes pay for std::regex.

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace viscount {

class IdPattern {
 public:
  // nullopt with `*error` set when the expression does not compile (or uses back-references,
  // which the bounded-stack matcher cannot run).
  static std::optional<IdPattern> compile(const std::string& ecmascript_regex, std::string* error);

  // Whole-value match, like std::regex_match.
  bool matches(std::string_view value) const {
    if (fallback_) return matchesRegex(value);
    if (value.size() < min_length_ || value.size() > max_length_) return false;
    // Branch-free: ids that pass, the common case, are scanned in full anyway, and the length
    // bound caps the work on the rest.
    unsigned char rejected = 0;
    for (char c : value)
      rejected |= rejects_[static_cast<unsigned char>(c)];
    return rejected == 0;
  }

  bool usesTable() const { return fallback_ == nullptr; }

 private:
  struct Regex;

  IdPattern() = default;  // only compile() makes one

  bool matchesRegex(std::string_view value) const;

  std::array<unsigned char, 256> rejects_{};  // 1 for bytes outside the class
  size_t min_length_ = 0;
  size_t max_length_ = 0;
  std::shared_ptr<const Regex> fallback_;  // shared: copies of a compiled pattern are cheap
};

}  // namespace viscount
