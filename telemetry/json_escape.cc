#include "telemetry/json_escape.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace viscount {
namespace {

// Byte classes. The values of the lead classes are the length of the sequence they start.
enum ByteClass : uint8_t {
  kSafe = 0,     // printable ASCII copied as is
  kEscape = 1,   // control byte, quote, backslash, DEL
  kLead2 = 2,    // C2..DF
  kLead3 = 3,    // E0..EF
  kLead4 = 4,    // F0..F4
  kInvalid = 5,  // stray continuation byte, overlong lead C0/C1, or F5..FF: never valid
};

constexpr std::array<uint8_t, 256> makeByteClasses() {
  std::array<uint8_t, 256> table{};
  for (int b = 0; b < 256; ++b) {
    uint8_t cls = kInvalid;
    if (b < 0x20 || b == '"' || b == '\\' || b == 0x7f) {
      cls = kEscape;
    } else if (b < 0x80) {
      cls = kSafe;
    } else if (b >= 0xC2 && b <= 0xDF) {
      cls = kLead2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      cls = kLead3;
    } else if (b >= 0xF0 && b <= 0xF4) {
      cls = kLead4;
    }
    table[static_cast<size_t>(b)] = cls;
  }
  return table;
}

constexpr std::array<uint8_t, 256> kByteClass = makeByteClasses();

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The second byte's range depends on the lead: this is what rejects overlong encodings (E0, F0),
// UTF-16 surrogates (ED A0..BF) and code points above U+10FFFF (F4 90..).
constexpr bool secondByteOk(unsigned char lead, unsigned char second) {
  switch (lead) {
    case 0xE0:
      return second >= 0xA0 && second <= 0xBF;
    case 0xED:
      return second >= 0x80 && second <= 0x9F;
    case 0xF0:
      return second >= 0x90 && second <= 0xBF;
    case 0xF4:
      return second >= 0x80 && second <= 0x8F;
    default:
      return second >= 0x80 && second <= 0xBF;
  }
}

constexpr bool isContinuation(unsigned char b) {
  return (b & 0xC0) == 0x80;
}

constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighBits = 0x8080808080808080ULL;

constexpr uint64_t hasZeroByte(uint64_t x) {
  return (x - kOnes) & ~x & kHighBits;
}

// Whether any of the 8 bytes is not plain safe ASCII: a control byte, quote, backslash, DEL or a
// byte >= 0x80. False positives are fine (the byte loop decides); false negatives are not.
constexpr bool needsAttention(uint64_t x) {
  const uint64_t control = (x - kOnes * 0x20) & ~x & kHighBits;
  const uint64_t quote = hasZeroByte(x ^ (kOnes * '"'));
  const uint64_t backslash = hasZeroByte(x ^ (kOnes * '\\'));
  const uint64_t del_or_high = (x | (x + kOnes)) & kHighBits;
  return (control | quote | backslash | del_or_high) != 0;
}

// Length of the multibyte sequence starting at `p` when it is well formed; otherwise 0, with
// `*invalid` set to the length of its maximal invalid prefix (Unicode's "maximal subpart"), which
// is replaced by a single U+FFFD.
size_t sequenceLength(const unsigned char* p, const unsigned char* end, size_t expected,
                      size_t* invalid) {
  size_t have = 1;
  if (p + 1 < end && secondByteOk(p[0], p[1])) {
    have = 2;
    while (have < expected && p + have < end && isContinuation(p[have]))
      ++have;
  }
  if (have == expected) return expected;
  *invalid = have;
  return 0;
}

void appendEscape(std::string& out, unsigned char b) {
  switch (b) {
    case '"':
      out.append("\\\"");
      return;
    case '\\':
      out.append("\\\\");
      return;
    case '\n':
      out.append("\\n");
      return;
    case '\r':
      out.append("\\r");
      return;
    case '\t':
      out.append("\\t");
      return;
    default: {
      const char escaped[6] = {'\\', 'u', '0', '0', kHexDigits[b >> 4], kHexDigits[b & 0xF]};
      out.append(escaped, sizeof escaped);
    }
  }
}

// Where to cut a value longer than `max_bytes` so that no well-formed character is split.
size_t truncationPoint(std::string_view value, size_t max_bytes) {
  size_t cut = max_bytes;
  // A well-formed character has at most three continuation bytes; more means the input is invalid
  // there anyway and the cut may fall anywhere.
  for (int back = 0; back < 3 && cut > 0; ++back) {
    if (!isContinuation(static_cast<unsigned char>(value[cut]))) break;
    --cut;
  }
  return isContinuation(static_cast<unsigned char>(value[cut])) ? max_bytes : cut;
}

uint64_t load8(const unsigned char* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof word);
  return word;
}

// End of the run starting at `p` that can be copied unchanged: plain ASCII and well-formed UTF-8.
// Most values are plain ASCII, so eight bytes are checked at a time; a word that needs attention is
// walked byte by byte with the class table. On a malformed sequence, `*invalid` is set to its
// length.
const unsigned char* scanRun(const unsigned char* p, const unsigned char* begin,
                             const unsigned char* end, size_t* invalid) {
  while (p < end) {
    if (end - p >= 8) {
      if (!needsAttention(load8(p))) {
        p += 8;
        continue;
      }
    } else if (end - begin >= 8 && !needsAttention(load8(end - 8))) {
      // The last partial word: the final eight bytes of the value overlap ones already scanned.
      return end;
    }
    const unsigned char* word_end = std::min(p + 8, end);
    while (p < word_end) {
      const uint8_t cls = kByteClass[*p];
      if (cls == kSafe) {
        ++p;
        continue;
      }
      if (cls < kLead2 || cls > kLead4) return p;
      const size_t len = sequenceLength(p, end, cls, invalid);
      if (len == 0) return p;
      p += len;
    }
  }
  return p;
}

void encode(std::string& out, std::string_view value) {
  const auto* begin = reinterpret_cast<const unsigned char*>(value.data());
  const auto* end = begin + value.size();
  const auto* p = begin;
  while (p < end) {
    size_t invalid = 0;
    const unsigned char* stop = scanRun(p, begin, end, &invalid);
    out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(stop - p));
    p = stop;
    if (p == end) break;
    if (kByteClass[*p] == kEscape) {
      appendEscape(out, *p);
      ++p;
    } else {
      out.append(kReplacement);
      p += invalid > 0 ? invalid : 1;
    }
  }
}

}  // namespace

void appendJsonEscaped(std::string& out, std::string_view value, size_t max_bytes) {
  if (value.size() <= max_bytes) {
    encode(out, value);
    return;
  }
  encode(out, value.substr(0, truncationPoint(value, max_bytes)));
  out.append(kTruncatedMarker);
}

void appendJsonString(std::string& out, std::string_view value, size_t max_bytes) {
  out.push_back('"');
  appendJsonEscaped(out, value, max_bytes);
  out.push_back('"');
}

}  // namespace viscount
