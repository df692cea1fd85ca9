#include "telemetry/query_redaction.h"

#include "proxy/http/ascii.h"

namespace viscount {
namespace {

constexpr std::string_view kRedacted = "REDACTED";

// Longest decoded name compared: longer ones can match no listed name (the names are short), and
// the bound keeps the decoding buffer on the stack.
constexpr size_t kMaxNameBytes = 64;

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = asciiLower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool isSeparator(char c) {
  return c == '&' || c == ';';
}

}  // namespace

bool QueryRedaction::listed(std::string_view raw_name) const {
  char decoded[kMaxNameBytes];
  size_t size = 0;
  for (size_t i = 0; i < raw_name.size(); ++i) {
    if (size == kMaxNameBytes) return false;
    char c = raw_name[i];
    if (c == '%' && i + 2 < raw_name.size() && hexValue(raw_name[i + 1]) >= 0 &&
        hexValue(raw_name[i + 2]) >= 0) {
      c = static_cast<char>(hexValue(raw_name[i + 1]) * 16 + hexValue(raw_name[i + 2]));
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    decoded[size++] = asciiLower(c);
  }
  const std::string_view name(decoded, size);
  for (const std::string& listed_name : names_) {
    if (listed_name == name) return true;
  }
  return false;
}

bool QueryRedaction::redact(std::string_view target, std::string& out) const {
  if (names_.empty()) return false;
  const size_t query = target.find('?');
  if (query == std::string_view::npos) return false;

  bool changed = false;
  size_t copied = 0;  // target[0, copied) is already in `out` (once changed)
  size_t pos = query + 1;
  while (pos <= target.size()) {
    size_t end = pos;
    while (end < target.size() && !isSeparator(target[end]))
      ++end;
    const std::string_view param = target.substr(pos, end - pos);
    const size_t equals = param.find('=');
    if (equals != std::string_view::npos && equals + 1 < param.size() &&
        listed(param.substr(0, equals))) {
      if (!changed) {
        out.clear();
        changed = true;
      }
      const size_t value_start = pos + equals + 1;
      out.append(target.substr(copied, value_start - copied));
      out.append(kRedacted);
      copied = end;
    }
    pos = end + 1;
  }
  if (changed) out.append(target.substr(copied));
  return changed;
}

}  // namespace viscount
