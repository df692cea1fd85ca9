#pragma once

// Integers appended to log lines and metric text without a format string or locale.

#include <charconv>
#include <concepts>
#include <string>

namespace viscount {

template <std::integral Int>
void appendInt(std::string& out, Int value) {
  char buf[24];
  const auto result = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, static_cast<size_t>(result.ptr - buf));
}

}  // namespace viscount
