#include "proxy/http2/content_length.h"

#include <charconv>

namespace viscount::h2 {

std::optional<uint64_t> parseContentLength(std::string_view value) {
  if (value.empty()) return std::nullopt;
  uint64_t length = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
  if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
  return length;
}

bool takeContentLength(HeaderList& headers, std::string_view value,
                       std::optional<uint64_t>* length) {
  headers.add("content-length", value);
  headers.fields().back().removed = true;
  const std::optional<uint64_t> parsed = parseContentLength(value);
  if (!parsed) return false;
  *length = parsed;
  return true;
}

}  // namespace viscount::h2
