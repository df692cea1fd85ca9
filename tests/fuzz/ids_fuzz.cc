// Fuzzes the checks every incoming id and trace header goes through. The input is
// "PATTERN\nVALUE" (or just VALUE, checked against the default patterns): PATTERN is compiled as
// context.id_pattern would be, and VALUE is matched against it and read as a traceparent, a
// tracestate and a Host value.
//
// Checked beyond not crashing:
// - a pattern IdPattern runs from its byte table matches exactly what std::regex matches;
// - a traceparent that is accepted has the shape the spec gives it, and writing it back as
//   version 00 gives a header that is accepted again with the same ids;
// - a tracestate that is accepted stays within the size bound once shortened, and the shortened
//   list is itself valid and kept whole;
// - an accepted Host value holds only characters an authority may hold.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>

#include "config/id_regex.h"
#include "filters/id_pattern.h"
#include "filters/trace_context.h"
#include "proxy/http/http_message.h"
#include "tests/fuzz/fuzz_support.h"

namespace viscount::fuzz {
namespace {

constexpr size_t kMaxPatternSize = 64;
// std::regex runs in time proportional to the value times the pattern's states; past this the
// comparison costs more than it can find.
constexpr size_t kMaxReferenceValue = 1024;

struct Compiled {
  std::optional<IdPattern> pattern;
  std::optional<std::regex> reference;  // for patterns IdPattern runs from its table
};

// Compiling dominates the cost of an input, and most mutations change the value, not the
// pattern: compiled patterns are kept (a pattern compiles the same way every time).
const Compiled& compile(const std::string& pattern) {
  static auto* cache = new std::map<std::string, Compiled>();
  if (auto it = cache->find(pattern); it != cache->end()) return it->second;
  if (cache->size() >= 4096) cache->clear();
  Compiled c;
  std::string why;
  c.pattern = IdPattern::compile(pattern, &why);
  if (c.pattern && c.pattern->usesTable()) c.reference.emplace(pattern, kIdRegexFlags);
  return cache->emplace(pattern, std::move(c)).first->second;
}

void checkPattern(const std::string& pattern, std::string_view value) {
  const Compiled& c = compile(pattern);
  if (!c.pattern) return;
  const bool matched = c.pattern->matches(value);
  if (!c.reference || value.size() > kMaxReferenceValue) return;
  const bool expected = std::regex_match(value.begin(), value.end(), *c.reference);
  if (matched != expected) {
    std::fprintf(stderr, "pattern %s on %s: table says %d, std::regex says %d\n",
                 escaped(pattern).c_str(), escaped(value).c_str(), matched, expected);
  }
  FUZZ_CHECK(matched == expected);
}

bool isLowerHex(std::string_view s) {
  return s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

void checkTraceparent(std::string_view value) {
  const std::optional<TraceParent> parent = parseTraceparent(value);
  if (!parent) return;
  FUZZ_CHECK(parent->version.size() == 2 && isLowerHex(parent->version) && parent->version != "ff");
  FUZZ_CHECK(parent->trace_id.size() == 32 && isLowerHex(parent->trace_id) &&
             parent->trace_id != std::string(32, '0'));
  FUZZ_CHECK(parent->parent_id.size() == 16 && isLowerHex(parent->parent_id) &&
             parent->parent_id != std::string(16, '0'));
  FUZZ_CHECK(parent->flags.size() == 2 && isLowerHex(parent->flags));
  const std::string written = formatTraceparent(parent->trace_id, parent->parent_id, parent->flags);
  const std::optional<TraceParent> again = parseTraceparent(written);
  FUZZ_CHECK(again && again->version == "00" && again->trace_id == parent->trace_id &&
             again->parent_id == parent->parent_id && again->flags == parent->flags);
}

void checkTracestateValue(std::string_view value) {
  std::string shortened;
  if (!checkTracestate(value, &shortened)) return;
  if (value.size() <= kMaxTracestateSize) {
    FUZZ_CHECK(shortened.empty());
    return;
  }
  FUZZ_CHECK(!shortened.empty() && shortened.size() <= kMaxTracestateSize);
  std::string twice;
  FUZZ_CHECK(checkTracestate(shortened, &twice) && twice.empty());
}

void checkAuthority(std::string_view value) {
  if (!isValidAuthority(value)) return;
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    FUZZ_CHECK(u > 0x20 && u < 0x7f);
    FUZZ_CHECK(std::string_view("/?#@\\\"<>{}|^`").find(c) == std::string_view::npos);
  }
  const size_t close = value.rfind(']');
  FUZZ_CHECK(value.starts_with("[") == (close != std::string_view::npos));
}

}  // namespace
}  // namespace viscount::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace viscount::fuzz;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view value = input;
  const size_t newline = input.find('\n');
  if (newline != std::string_view::npos && newline <= kMaxPatternSize) {
    checkPattern(std::string(input.substr(0, newline)), input.substr(newline + 1));
    value = input.substr(newline + 1);
  } else {
    checkPattern("^[A-Za-z0-9._:-]{1,128}$", value);
    checkPattern("^[\\x21-\\x7E]{1,256}$", value);
  }
  checkTraceparent(value);
  checkTracestateValue(value);
  checkAuthority(value);
  return 0;
}
