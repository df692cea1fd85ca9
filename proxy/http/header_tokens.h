#pragma once

// Reading comma-separated header values (RFC 9110 §5.6.1): elements are trimmed of spaces and
// tabs, and empty elements (",,", a trailing comma) are skipped as the RFC asks of recipients.

#include <cstddef>
#include <string_view>

namespace viscount {

inline std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

template <typename Fn>
void forEachListElement(std::string_view value, Fn&& fn) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view element = trimOws(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    if (!element.empty()) fn(element);
  }
}

}  // namespace viscount
