#include "filters/trace_context.h"

#include <array>
#include <cassert>
#include <cstring>

#include "filters/header_tokens.h"

namespace viscount {
namespace {

// The spec's HEXDIGLC: uppercase is as invalid as any other character.
constexpr std::array<bool, 256> kLowerHex = [] {
  std::array<bool, 256> table{};
  for (char c : std::string_view("0123456789abcdef"))
    table[static_cast<unsigned char>(c)] = true;
  return table;
}();

bool isLowerHex(std::string_view s) {
  for (char c : s) {
    if (!kLowerHex[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

bool isAllZero(std::string_view s) {
  return s.find_first_not_of('0') == std::string_view::npos;
}

}  // namespace

std::optional<TraceParent> parseTraceparent(std::string_view value) {
  std::string_view s = trimOws(value);
  if (s.size() < kTraceparentSize) return std::nullopt;
  if (s[2] != '-' || s[35] != '-' || s[52] != '-') return std::nullopt;

  TraceParent tp{s.substr(0, 2), s.substr(3, 32), s.substr(36, 16), s.substr(53, 2)};
  if (!isLowerHex(tp.version) || tp.version == "ff") return std::nullopt;
  if (tp.version == "00") {
    if (s.size() != kTraceparentSize) return std::nullopt;
  } else if (s.size() > kTraceparentSize && s[kTraceparentSize] != '-') {
    // Future versions may append fields, but only after another dash.
    return std::nullopt;
  }
  if (!isLowerHex(tp.trace_id) || isAllZero(tp.trace_id)) return std::nullopt;
  if (!isLowerHex(tp.parent_id) || isAllZero(tp.parent_id)) return std::nullopt;
  if (!isLowerHex(tp.flags)) return std::nullopt;
  return tp;
}

void formatTraceparent(std::string_view trace_id, std::string_view span_id, std::string_view flags,
                       char out[kTraceparentSize]) {
  assert(trace_id.size() == 32 && span_id.size() == 16 && flags.size() == 2);
  std::memcpy(out, "00-", 3);
  std::memcpy(out + 3, trace_id.data(), 32);
  out[35] = '-';
  std::memcpy(out + 36, span_id.data(), 16);
  out[52] = '-';
  std::memcpy(out + 53, flags.data(), 2);
}

std::string formatTraceparent(std::string_view trace_id, std::string_view span_id,
                              std::string_view flags) {
  std::string out(kTraceparentSize, '\0');
  formatTraceparent(trace_id, span_id, flags, out.data());
  return out;
}

}  // namespace viscount
