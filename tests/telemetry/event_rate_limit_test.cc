#include "telemetry/event_rate_limit.h"

#include <gtest/gtest.h>

#include <chrono>

namespace viscount {
namespace {

using namespace std::chrono_literals;

TEST(EventRateLimitTest, HoldsBackBeyondTheRateAndReportsTheCount) {
  EventRateLimit limit;
  const auto t0 = EventRateLimit::Clock::time_point{} + 100s;
  uint64_t suppressed = 99;
  EXPECT_TRUE(limit.admit("accept_failed", 1, t0, &suppressed));
  EXPECT_EQ(suppressed, 0u);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(limit.admit("accept_failed", 1, t0 + 999ms, &suppressed));
  }
  // Another event has its own budget.
  EXPECT_TRUE(limit.admit("upstream_error", 1, t0 + 10ms, &suppressed));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_TRUE(limit.admit("accept_failed", 1, t0 + 1s, &suppressed));
  EXPECT_EQ(suppressed, 1000u);
  EXPECT_EQ(limit.suppressedTotal(), 1000u);
  EXPECT_FALSE(limit.admit("accept_failed", 1, t0 + 1500ms, &suppressed));
  EXPECT_TRUE(limit.admit("accept_failed", 1, t0 + 2s, &suppressed));
  EXPECT_EQ(suppressed, 1u);
}

TEST(EventRateLimitTest, ABurstUpToTheRateIsWritten) {
  EventRateLimit limit;
  const auto t0 = EventRateLimit::Clock::time_point{} + 100s;
  uint64_t suppressed = 0;
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(limit.admit("upstream_error", 10, t0, &suppressed)) << i;
  }
  EXPECT_FALSE(limit.admit("upstream_error", 10, t0, &suppressed));
}

TEST(EventRateLimitTest, ManyEventNamesStayBounded) {
  EventRateLimit limit;
  const auto t0 = EventRateLimit::Clock::time_point{} + 100s;
  uint64_t suppressed = 0;
  for (int i = 0; i < 500; ++i) {
    EXPECT_TRUE(limit.admit("event" + std::to_string(i), 1, t0, &suppressed));
  }
}

}  // namespace
}  // namespace viscount
