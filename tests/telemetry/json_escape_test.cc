#include "telemetry/json_escape.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

namespace viscount {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

std::string jsonQuoted(std::string_view value, size_t max_bytes = kMaxJsonValueBytes) {
  std::string out;
  appendJsonString(out, value, max_bytes);
  return out;
}

// Parses the output as a JSON document, which also proves it is valid UTF-8 and properly escaped.
std::string decoded(std::string_view value, size_t max_bytes = kMaxJsonValueBytes) {
  const std::string text = jsonQuoted(value, max_bytes);
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  return nlohmann::json::parse(text).get<std::string>();
}

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i)
    out.append(s);
  return out;
}

TEST(JsonEscape, EveryByteAloneIsValidJson) {
  for (int b = 0; b < 256; ++b) {
    const std::string input(1, static_cast<char>(b));
    const std::string text = jsonQuoted(input);
    for (const char c : text) {
      EXPECT_GE(static_cast<unsigned char>(c), 0x20) << "raw control byte for input " << b;
      EXPECT_NE(static_cast<unsigned char>(c), 0x7f) << "raw DEL for input " << b;
    }
    const std::string value = nlohmann::json::parse(text).get<std::string>();
    if (b < 0x80) {
      EXPECT_EQ(value, input) << "byte " << b;
    } else {
      EXPECT_EQ(value, kFffd) << "byte " << b;  // no byte >= 0x80 is valid UTF-8 on its own
    }
  }
}

// Clean ASCII is scanned eight bytes at a time: every byte must be caught at every position of a
// word.
TEST(JsonEscape, EveryByteAtEveryPositionOfALongValue) {
  for (int b = 0; b < 256; ++b) {
    for (size_t pos = 0; pos < 17; ++pos) {
      const std::string input =
          std::string(pos, 'a') + static_cast<char>(b) + std::string(24 - pos, 'z');
      const std::string expected_middle = b < 0x80 ? std::string(1, static_cast<char>(b)) : kFffd;
      ASSERT_EQ(decoded(input),
                std::string(pos, 'a') + expected_middle + std::string(24 - pos, 'z'))
          << "byte " << b << " at " << pos;
    }
  }
}

TEST(JsonEscape, AllBytesInOneString) {
  std::string input;
  for (int b = 0; b < 256; ++b)
    input.push_back(static_cast<char>(b));
  const std::string value = decoded(input);
  std::string ascii = input.substr(0, 0x80);
  EXPECT_EQ(value.substr(0, 0x80), ascii);
  EXPECT_EQ(value.substr(0x80), repeat(kFffd, 0x80));
}

TEST(JsonEscape, QuotesBackslashesAndShortForms) {
  EXPECT_EQ(jsonQuoted(R"(a"b\c)"), R"("a\"b\\c")");
  EXPECT_EQ(jsonQuoted("x\ny\rz\t"), R"("x\ny\rz\t")");
  EXPECT_EQ(jsonQuoted(std::string("\0\x01\x1b\x1f\x7f", 5)),
            R"("\u0000\u0001\u001b\u001f\u007f")");
  EXPECT_EQ(jsonQuoted(""), R"("")");
  EXPECT_EQ(jsonQuoted("plain /path?q=1"), R"("plain /path?q=1")");
}

TEST(JsonEscape, ValidMultibyteIsKept) {
  const std::string text =
      "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \xEF\xBF\xBD";
  EXPECT_EQ(jsonQuoted(text), "\"" + text + "\"");
  EXPECT_EQ(decoded(text), text);
}

TEST(JsonEscape, InvalidUtf8BecomesReplacementPerMaximalSubpart) {
  struct Case {
    std::string input;
    std::string expected;
  };
  const Case cases[] = {
      {"\xC0\xAF", repeat(kFffd, 2)},          // overlong '/'
      {"\xC1\xBF", repeat(kFffd, 2)},          // overlong
      {"\xE0\x80\xAF", repeat(kFffd, 3)},      // overlong three-byte
      {"\xF0\x80\x80\xAF", repeat(kFffd, 4)},  // overlong four-byte
      {"\xED\xA0\x80", repeat(kFffd, 3)},      // UTF-16 high surrogate
      {"\xED\xBF\xBF", repeat(kFffd, 3)},      // UTF-16 low surrogate
      {"\xF4\x90\x80\x80", repeat(kFffd, 4)},  // above U+10FFFF
      {"\xF5\x80\x80\x80", repeat(kFffd, 4)},  // lead byte never valid
      {"\xFF", kFffd},                         // never valid
      {"\xFE\xFF", repeat(kFffd, 2)},          // byte-order-mark bytes
      {"\x80", kFffd},                         // stray continuation
      {"\xE2\x82", kFffd},                     // truncated at the end: one subpart
      {"\xE2\x82"
       "A",
       kFffd + "A"},            // truncated before ASCII
      {"\xF0\x9F\x98", kFffd},  // truncated four-byte
      {"\xF0\x9F\x98"
       "\xC3\xA9",
       kFffd + "\xC3\xA9"},  // truncated, then a valid character
      {"a\xC3"
       "\"",
       "a" + kFffd + "\""},  // truncated before a quote
  };
  for (const Case& c : cases) {
    EXPECT_EQ(decoded(c.input), c.expected) << jsonQuoted(c.input);
  }
}

TEST(JsonEscape, TruncatesLongValuesWithMarker) {
  const std::string long_ascii(5000, 'a');
  EXPECT_EQ(decoded(long_ascii), std::string(4096, 'a') + std::string(kTruncatedMarker));
  EXPECT_EQ(decoded(std::string(4096, 'a')), std::string(4096, 'a'));  // at the limit: kept whole
}

TEST(JsonEscape, TruncationNeverSplitsACharacter) {
  const std::string mixed = repeat("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 20);  // 1+2+3+4 bytes
  for (size_t max = 0; max < 40; ++max) {
    const std::string value = decoded(mixed, max);
    ASSERT_EQ(value.find(kFffd), std::string::npos) << "max " << max;
    ASSERT_TRUE(value.ends_with(kTruncatedMarker));
    const std::string kept = value.substr(0, value.size() - kTruncatedMarker.size());
    EXPECT_LE(kept.size(), max);
    EXPECT_GE(kept.size() + 3, max);
    EXPECT_EQ(mixed.substr(0, kept.size()), kept);
  }
  const std::string euros = repeat("\xE2\x82\xAC", 2000);
  const std::string value = decoded(euros);
  EXPECT_EQ(value, repeat("\xE2\x82\xAC", 1365) + std::string(kTruncatedMarker));
}

TEST(JsonEscape, TruncatedHostileValueIsStillValid) {
  std::string hostile;
  for (int i = 0; i < 3000; ++i)
    hostile.append("\"\\\n\xFF\xE2\x82");
  const std::string text = jsonQuoted(hostile);
  EXPECT_TRUE(nlohmann::json::accept(text));
  EXPECT_EQ(text.find('\n'), std::string::npos);
}

TEST(JsonEscape, RandomBytesAlwaysGiveOneLineOfValidJson) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<size_t> length(0, 64);
  for (int round = 0; round < 20000; ++round) {
    std::string input(length(rng), '\0');
    for (char& c : input)
      c = static_cast<char>(byte(rng));
    const std::string text = jsonQuoted(input, 48);
    ASSERT_EQ(text.find('\n'), std::string::npos);
    ASSERT_TRUE(nlohmann::json::accept(text)) << text;
  }
}

TEST(JsonEscape, EscapedFormHasNoQuotes) {
  std::string out = "x=";
  appendJsonEscaped(out, "a\x1b[31mb\"");
  EXPECT_EQ(out, R"(x=a\u001b[31mb\")");
}

}  // namespace
}  // namespace viscount
