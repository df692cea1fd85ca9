#include "config/duration.h"

#include <gtest/gtest.h>

#include <string>

namespace viscount {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

std::string durationError(std::string_view text) {
  std::string error;
  EXPECT_FALSE(parseDuration(text, &error).has_value()) << text;
  return error;
}

std::string sizeError(std::string_view text) {
  std::string error;
  EXPECT_FALSE(parseSize(text, &error).has_value()) << text;
  return error;
}

TEST(DurationTest, ParsesEachUnit) {
  EXPECT_EQ(parseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(parseDuration("15s"), seconds(15));
  EXPECT_EQ(parseDuration("5m"), minutes(5));
  EXPECT_EQ(parseDuration("1h"), hours(1));
  EXPECT_EQ(parseDuration("0s"), milliseconds(0));
  EXPECT_EQ(parseDuration("0ms"), milliseconds(0));
}

TEST(DurationTest, ParsesCombinationsAndExactDecimals) {
  EXPECT_EQ(parseDuration("1h30m"), minutes(90));
  EXPECT_EQ(parseDuration("1m30s500ms"), milliseconds(90500));
  EXPECT_EQ(parseDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(parseDuration("0.1s"), milliseconds(100));
  EXPECT_EQ(parseDuration("0.25h"), minutes(15));
  EXPECT_EQ(parseDuration("10000h"), kMaxDuration);
}

TEST(DurationTest, RejectsMissingUnit) {
  EXPECT_NE(durationError("15").find("missing unit"), std::string::npos);
  EXPECT_NE(durationError("0").find("missing unit"), std::string::npos);
  EXPECT_NE(durationError("1h30").find("missing unit"), std::string::npos);
}

TEST(DurationTest, RejectsNegatives) {
  EXPECT_NE(durationError("-5s").find("negative"), std::string::npos);
  EXPECT_NE(durationError("-0s").find("negative"), std::string::npos);
}

TEST(DurationTest, RejectsUnknownUnits) {
  EXPECT_NE(durationError("5x").find("unknown unit 'x'"), std::string::npos);
  EXPECT_NE(durationError("10us").find("unknown unit 'us'"), std::string::npos);
  EXPECT_NE(durationError("1d").find("unknown unit 'd'"), std::string::npos);
  durationError("5S");  // units are case-sensitive: "M" could be read as months
  durationError("5 s");
  durationError(" 5s");
  durationError("5s ");
}

TEST(DurationTest, RejectsMalformedNumbers) {
  durationError("");
  durationError("s");
  durationError("ms");
  durationError(".5s");
  durationError("1.s");
  durationError("1..5s");
  durationError("+5s");
  durationError("0x10s");
  durationError("1e3ms");
}

TEST(DurationTest, RejectsSubMillisecondPrecision) {
  EXPECT_NE(durationError("1.5ms").find("whole number of milliseconds"), std::string::npos);
  EXPECT_NE(durationError("0.0001s").find("whole number of milliseconds"), std::string::npos);
}

TEST(DurationTest, RejectsOverflow) {
  EXPECT_NE(durationError("10001h").find("too large"), std::string::npos);
  EXPECT_NE(durationError("9999h60m1ms").find("too large"), std::string::npos);
  EXPECT_NE(durationError("99999999999999999999999h").find("too large"), std::string::npos);
  EXPECT_NE(durationError("18446744073709551615h").find("too large"), std::string::npos);
  EXPECT_NE(durationError("9223372036854775807ms").find("too large"), std::string::npos);
}

TEST(DurationTest, FormatsWithTheLargestExactUnit) {
  EXPECT_EQ(formatDuration(milliseconds(0)), "0s");
  EXPECT_EQ(formatDuration(milliseconds(250)), "250ms");
  EXPECT_EQ(formatDuration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(formatDuration(seconds(15)), "15s");
  EXPECT_EQ(formatDuration(seconds(90)), "90s");
  EXPECT_EQ(formatDuration(minutes(5)), "5m");
  EXPECT_EQ(formatDuration(minutes(90)), "90m");
  EXPECT_EQ(formatDuration(hours(1)), "1h");
  EXPECT_EQ(formatDuration(hours(48)), "48h");
}

TEST(DurationTest, FormatRoundTrips) {
  for (const auto ms : {0LL, 1LL, 999LL, 1000LL, 1001LL, 59999LL, 60000LL, 3599999LL, 3600000LL,
                        86400000LL, static_cast<long long>(kMaxDuration.count())}) {
    const milliseconds value(ms);
    EXPECT_EQ(parseDuration(formatDuration(value)), value) << formatDuration(value);
  }
}

TEST(SizeTest, ParsesPlainBytes) {
  EXPECT_EQ(parseSize("0"), 0u);
  EXPECT_EQ(parseSize("8192"), 8192u);
  EXPECT_EQ(parseSize("10B"), 10u);
  EXPECT_EQ(parseSize("18446744073709551615"), UINT64_MAX);
}

TEST(SizeTest, ParsesBinaryUnits) {
  EXPECT_EQ(parseSize("64KiB"), 64u * 1024);
  EXPECT_EQ(parseSize("60KiB"), 61440u);
  EXPECT_EQ(parseSize("1MiB"), 1024u * 1024);
  EXPECT_EQ(parseSize("10MiB"), 10u * 1024 * 1024);
  EXPECT_EQ(parseSize("1GiB"), 1024ull * 1024 * 1024);
  EXPECT_EQ(parseSize("2TiB"), 2ull << 40);
  EXPECT_EQ(parseSize("64Ki"), 64u * 1024);
  EXPECT_EQ(parseSize("1Mi"), 1024u * 1024);
  EXPECT_EQ(parseSize("64 KiB"), 64u * 1024);
  EXPECT_EQ(parseSize("1.5KiB"), 1536u);
  EXPECT_EQ(parseSize("0.5MiB"), 512u * 1024);
}

TEST(SizeTest, ParsesDecimalUnits) {
  EXPECT_EQ(parseSize("1KB"), 1000u);
  EXPECT_EQ(parseSize("1kB"), 1000u);
  EXPECT_EQ(parseSize("5MB"), 5'000'000u);
  EXPECT_EQ(parseSize("2GB"), 2'000'000'000u);
  EXPECT_EQ(parseSize("1TB"), 1'000'000'000'000u);
  EXPECT_EQ(parseSize("1.5KB"), 1500u);
}

TEST(SizeTest, RejectsAmbiguousAndUnknownUnits) {
  EXPECT_NE(sizeError("1K").find("unknown unit 'K'"), std::string::npos);
  EXPECT_NE(sizeError("1M").find("unknown unit 'M'"), std::string::npos);
  EXPECT_NE(sizeError("1G").find("unknown unit"), std::string::npos);
  EXPECT_NE(sizeError("1kib").find("unknown unit"), std::string::npos);
  EXPECT_NE(sizeError("1mb").find("unknown unit"), std::string::npos);
  EXPECT_NE(sizeError("1KiBs").find("unknown unit"), std::string::npos);
}

TEST(SizeTest, RejectsBadNumbers) {
  EXPECT_NE(sizeError("-1").find("negative"), std::string::npos);
  EXPECT_NE(sizeError("-1KiB").find("negative"), std::string::npos);
  sizeError("");
  sizeError("KiB");
  sizeError("abc");
  sizeError("+5");
  sizeError("0x10");
  sizeError("1e6");
  sizeError(" 1");
  EXPECT_NE(sizeError("1.5").find("whole number of bytes"), std::string::npos);
  EXPECT_NE(sizeError("1.0001KB").find("whole number"), std::string::npos);
}

TEST(SizeTest, RejectsOverflow) {
  EXPECT_NE(sizeError("18446744073709551616").find("too large"), std::string::npos);
  EXPECT_NE(sizeError("20000000TiB").find("too large"), std::string::npos);
  EXPECT_NE(sizeError("16777215.99999TiB").find("whole number"), std::string::npos);
}

TEST(SizeTest, FormatsWithBinaryUnitsWhenExact) {
  EXPECT_EQ(formatSize(0), "0");
  EXPECT_EQ(formatSize(1), "1");
  EXPECT_EQ(formatSize(1000), "1000");
  EXPECT_EQ(formatSize(1536), "1536");
  EXPECT_EQ(formatSize(61440), "60KiB");
  EXPECT_EQ(formatSize(1024 * 1024), "1MiB");
  EXPECT_EQ(formatSize(10 * 1024 * 1024), "10MiB");
  EXPECT_EQ(formatSize(1024ull * 1024 * 1024), "1GiB");
  EXPECT_EQ(formatSize(3ull << 40), "3TiB");
}

TEST(SizeTest, FormatRoundTrips) {
  const uint64_t samples[] = {0,       1,     1023,       1024,       1025,
                              1000000, 61440, 1ull << 30, 5ull << 40, UINT64_MAX};
  for (const uint64_t bytes : samples) {
    EXPECT_EQ(parseSize(formatSize(bytes)), bytes) << formatSize(bytes);
  }
}

TEST(UnsignedTest, AcceptsOnlyPlainDecimal) {
  EXPECT_EQ(parseUnsigned("0"), 0u);
  EXPECT_EQ(parseUnsigned("42"), 42u);
  EXPECT_EQ(parseUnsigned("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(parseUnsigned("18446744073709551616"));
  EXPECT_FALSE(parseUnsigned("99999999999999999999"));
  EXPECT_FALSE(parseUnsigned(""));
  EXPECT_FALSE(parseUnsigned("-1"));
  EXPECT_FALSE(parseUnsigned("+1"));
  EXPECT_FALSE(parseUnsigned(" 1"));
  EXPECT_FALSE(parseUnsigned("0x10"));
  EXPECT_FALSE(parseUnsigned("1.0"));
}

}  // namespace
}  // namespace viscount
