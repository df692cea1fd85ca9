#include "filters/trace_context.h"

#include <array>
#include <cassert>
#include <cstring>

#include "proxy/http/header_tokens.h"

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

// The spec's key characters after the first: lcalpha / DIGIT / "_" / "-" / "*" / "/".
bool isKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
         c == '/';
}

bool isLowerAlpha(char c) {
  return c >= 'a' && c <= 'z';
}

bool keyPart(std::string_view s, size_t max, bool digit_first) {
  if (s.empty() || s.size() > max) return false;
  if (!isLowerAlpha(s[0]) && !(digit_first && s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s.substr(1)) {
    if (!isKeyChar(c)) return false;
  }
  return true;
}

// simple-key, or tenant-id "@" system-id.
bool isTracestateKey(std::string_view key) {
  const size_t at = key.find('@');
  if (at == std::string_view::npos) return keyPart(key, 256, false);
  return keyPart(key.substr(0, at), 241, true) && keyPart(key.substr(at + 1), 14, false);
}

// Up to 256 printable characters other than ',' and '=', not ending in a space.
bool isTracestateValue(std::string_view value) {
  if (value.empty() || value.size() > 256 || value.back() == ' ') return false;
  for (char c : value) {
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
  }
  return true;
}

}  // namespace

bool checkTracestate(std::string_view value, std::string* shortened) {
  shortened->clear();
  std::string_view members[kMaxTracestateMembers];
  size_t count = 0;
  bool ok = true;
  forEachListElement(value, [&](std::string_view member) {
    if (!ok) return;
    const size_t eq = member.find('=');
    if (count == kMaxTracestateMembers || eq == std::string_view::npos ||
        !isTracestateKey(member.substr(0, eq)) || !isTracestateValue(member.substr(eq + 1))) {
      ok = false;
      return;
    }
    const std::string_view key = member.substr(0, eq + 1);
    for (size_t i = 0; i < count; ++i) {
      if (members[i].substr(0, eq + 1) == key) ok = false;  // the same key twice
    }
    members[count++] = member;
  });
  if (!ok || value.size() <= kMaxTracestateSize) return ok;

  // Too long: drop long members first, then from the end, until the joined list fits.
  size_t total = 0;
  size_t kept = 0;
  for (size_t i = 0; i < count; ++i) {
    if (members[i].size() > kLongTracestateMember) continue;
    const size_t grown = total + members[i].size() + (kept > 0 ? 1 : 0);
    if (grown > kMaxTracestateSize) break;
    total = grown;
    members[kept++] = members[i];
  }
  for (size_t i = 0; i < kept; ++i) {
    if (i > 0) shortened->push_back(',');
    shortened->append(members[i]);
  }
  return kept > 0;
}

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
