#include "filters/id_generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tests/filters/test_headers.h"

namespace viscount {
namespace {

using test::isLowerHex;
using test::isUuid;

// The 128 bits of a formatted uuid, for cheap sorting of a million of them.
std::pair<uint64_t, uint64_t> uuidBits(const char* s) {
  std::string hex;
  for (size_t i = 0; i < 36; ++i) {
    if (s[i] != '-') hex.push_back(s[i]);
  }
  return {std::stoull(hex.substr(0, 16), nullptr, 16), std::stoull(hex.substr(16), nullptr, 16)};
}

uint64_t uuid7Millis(std::string_view s) {
  std::string hex = std::string(s.substr(0, 8)) + std::string(s.substr(9, 4));
  return std::stoull(hex, nullptr, 16);
}

uint64_t nowMillis() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

template <typename Make>
void expectUnique(size_t n, Make make) {
  std::vector<std::pair<uint64_t, uint64_t>> bits;
  bits.reserve(n);
  char id[IdGenerator::kUuidSize];
  for (size_t i = 0; i < n; ++i) {
    make(id);
    bits.push_back(uuidBits(id));
  }
  std::sort(bits.begin(), bits.end());
  EXPECT_EQ(std::adjacent_find(bits.begin(), bits.end()), bits.end());
}

TEST(IdGeneratorTest, Uuid4HasVersionVariantAndLowercaseHex) {
  IdGenerator ids;
  char id[IdGenerator::kUuidSize];
  for (int i = 0; i < 10000; ++i) {
    ids.uuid4(id);
    ASSERT_TRUE(isUuid(std::string_view(id, sizeof id), '4')) << std::string_view(id, sizeof id);
  }
}

TEST(IdGeneratorTest, Uuid7HasVersionVariantAndCurrentTime) {
  IdGenerator ids;
  char id[IdGenerator::kUuidSize];
  for (int i = 0; i < 10000; ++i) {
    ids.uuid7(id);
    std::string_view s(id, sizeof id);
    ASSERT_TRUE(isUuid(s, '7')) << s;
  }
  // Few enough ids that the per-millisecond counter (at least 2048 values) cannot run out and
  // borrow from the next millisecond, as a tight loop of thousands would.
  IdGenerator fresh;
  for (int i = 0; i < 100; ++i) {
    uint64_t before = nowMillis();
    fresh.uuid7(id);
    uint64_t after = nowMillis();
    std::string_view s(id, sizeof id);
    ASSERT_GE(uuid7Millis(s), before);
    ASSERT_LE(uuid7Millis(s), after);
  }
}

TEST(IdGeneratorTest, NewIdFollowsTheConfiguredFormat) {
  IdGenerator ids;
  EXPECT_TRUE(isUuid(ids.newId(IdFormat::kUuid4), '4'));
  EXPECT_TRUE(isUuid(ids.newId(IdFormat::kUuid7), '7'));
}

TEST(IdGeneratorTest, AMillionUuid4AreUnique) {
  IdGenerator ids;
  expectUnique(1'000'000, [&](char* out) { ids.uuid4(out); });
}

TEST(IdGeneratorTest, AMillionUuid7AreUnique) {
  IdGenerator ids;
  expectUnique(1'000'000, [&](char* out) { ids.uuid7(out); });
}

TEST(IdGeneratorTest, SeparateGeneratorsDoNotRepeatEachOther) {
  IdGenerator a;
  IdGenerator b;
  bool from_a = false;
  expectUnique(200'000, [&](char* out) {
    from_a = !from_a;
    (from_a ? a : b).uuid4(out);
  });
}

TEST(IdGeneratorTest, Uuid7IsStrictlyIncreasing) {
  IdGenerator ids;
  std::string previous(IdGenerator::kUuidSize, '0');
  std::string id(IdGenerator::kUuidSize, '\0');
  for (int i = 0; i < 200'000; ++i) {
    ids.uuid7(id.data());
    ASSERT_GT(id, previous);
    previous = id;
  }
}

TEST(IdGeneratorTest, Uuid7StaysOrderedWhenTheCounterRunsOutInOneMillisecond) {
  IdGenerator ids;
  constexpr uint64_t kMs = 1'700'000'000'000;
  std::string previous(IdGenerator::kUuidSize, '0');
  std::string id(IdGenerator::kUuidSize, '\0');
  for (int i = 0; i < 10'000; ++i) {
    ids.uuid7At(kMs, id.data());
    ASSERT_TRUE(isUuid(id, '7'));
    ASSERT_GT(id, previous);
    ASSERT_GE(uuid7Millis(id), kMs);
    previous = id;
  }
  // 10'000 ids need at least 5 milliseconds of 2048 counter values each; no more than that is
  // borrowed from the future.
  EXPECT_LE(uuid7Millis(id), kMs + 10'000 / 2048 + 1);
}

TEST(IdGeneratorTest, Uuid7OrdersAcrossMilliseconds) {
  IdGenerator ids;
  std::string a(IdGenerator::kUuidSize, '\0');
  std::string b(IdGenerator::kUuidSize, '\0');
  ids.uuid7At(1'700'000'000'000, a.data());
  ids.uuid7At(1'700'000'000'001, b.data());
  EXPECT_LT(a, b);
  EXPECT_EQ(uuid7Millis(a), 1'700'000'000'000u);
  EXPECT_EQ(uuid7Millis(b), 1'700'000'000'001u);
}

TEST(IdGeneratorTest, Uuid7SmallClockStepBackKeepsOrder) {
  IdGenerator ids;
  std::string a(IdGenerator::kUuidSize, '\0');
  std::string b(IdGenerator::kUuidSize, '\0');
  ids.uuid7At(1'700'000'005'000, a.data());
  ids.uuid7At(1'700'000'004'000, b.data());
  EXPECT_LT(a, b);
}

TEST(IdGeneratorTest, Uuid7LargeClockStepBackFollowsTheClock) {
  IdGenerator ids;
  std::string a(IdGenerator::kUuidSize, '\0');
  std::string b(IdGenerator::kUuidSize, '\0');
  ids.uuid7At(1'700'000'060'000, a.data());
  ids.uuid7At(1'700'000'000'000, b.data());
  EXPECT_EQ(uuid7Millis(b), 1'700'000'000'000u);
}

TEST(IdGeneratorTest, TraceAndSpanIdsAreLowercaseHexAndNonZero) {
  IdGenerator ids;
  char trace[IdGenerator::kTraceIdSize];
  char span[IdGenerator::kSpanIdSize];
  for (int i = 0; i < 10000; ++i) {
    ids.traceId(trace);
    ids.spanId(span);
    std::string_view t(trace, sizeof trace);
    std::string_view s(span, sizeof span);
    ASSERT_TRUE(isLowerHex(t)) << t;
    ASSERT_TRUE(isLowerHex(s)) << s;
    ASSERT_NE(t.find_first_not_of('0'), std::string_view::npos);
    ASSERT_NE(s.find_first_not_of('0'), std::string_view::npos);
  }
}

TEST(IdGeneratorTest, SpansDoNotRepeat) {
  IdGenerator ids;
  std::vector<std::string> spans;
  char span[IdGenerator::kSpanIdSize];
  for (int i = 0; i < 100'000; ++i) {
    ids.spanId(span);
    spans.emplace_back(span, sizeof span);
  }
  std::sort(spans.begin(), spans.end());
  EXPECT_EQ(std::adjacent_find(spans.begin(), spans.end()), spans.end());
}

}  // namespace
}  // namespace viscount
