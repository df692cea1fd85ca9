#include "proxy/http/grpc_wire.h"

#include <charconv>

#include "proxy/http/ascii.h"

namespace viscount {

bool isGrpcContentType(std::string_view value) {
  constexpr std::string_view kType = "application/grpc";
  if (value.size() < kType.size()) return false;
  // Every request pays for this check: the common spelling costs one memcmp.
  const std::string_view prefix = value.substr(0, kType.size());
  if (prefix != kType && !equalsIgnoreCase(prefix, kType)) return false;
  if (value.size() == kType.size()) return true;
  const char next = value[kType.size()];
  return next == '+' || next == ';' || next == ' ' || next == '\t';
}

bool isGrpcRequest(const HeaderList& headers) {
  const HeaderField* f = headers.find("content-type");
  return f != nullptr && isGrpcContentType(f->value);
}

std::optional<std::chrono::milliseconds> parseGrpcTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  const std::string_view digits = value.substr(0, value.size() - 1);
  uint64_t n = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  uint64_t ms = 0;
  switch (value.back()) {
    case 'H':
      ms = n * 3'600'000;
      break;
    case 'M':
      ms = n * 60'000;
      break;
    case 'S':
      ms = n * 1'000;
      break;
    case 'm':
      ms = n;
      break;
    case 'u':
      ms = (n + 999) / 1'000;
      break;
    case 'n':
      ms = (n + 999'999) / 1'000'000;
      break;
    default:
      return std::nullopt;
  }
  // At most 99999999 hours: fits in int64 milliseconds with room to spare.
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

size_t formatGrpcTimeout(char* out, uint64_t ms) {
  char unit = 'm';
  if (ms > 99'999'999) {
    ms /= 1'000;
    unit = 'S';
    if (ms > 99'999'999) ms = 99'999'999;
  }
  const auto result = std::to_chars(out, out + kGrpcTimeoutChars - 1, ms);
  *result.ptr = unit;
  return static_cast<size_t>(result.ptr - out) + 1;
}

std::optional<int> parseGrpcStatus(std::string_view value) {
  int code = 0;
  const char* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, code);
  if (ec != std::errc() || ptr != end || value.empty() || code < 0) return std::nullopt;
  return code;
}

void appendGrpcPercentEncoded(std::string& out, std::string_view text) {
  constexpr char kHex[] = "0123456789ABCDEF";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte <= 0x7E && byte != '%') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xF]);
    }
  }
}

namespace {
int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

void appendGrpcPercentDecoded(std::string& out, std::string_view text, size_t limit) {
  size_t written = 0;
  for (size_t i = 0; i < text.size() && written < limit; ++i, ++written) {
    if (text[i] == '%' && i + 2 < text.size() && hexValue(text[i + 1]) >= 0 &&
        hexValue(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexValue(text[i + 1]) * 16 + hexValue(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
}

}  // namespace viscount
