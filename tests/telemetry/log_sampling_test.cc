#include "telemetry/log_sampling.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>

namespace viscount {
namespace {

std::string randomTraceId(std::mt19937_64& rng) {
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return text;
}

int keptOf(const LogSampling& sampling, int n, uint64_t seed, bool trace_ids = true) {
  std::mt19937_64 rng(seed);
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    RequestContext ctx;
    if (trace_ids) {
      ctx.trace_id = randomTraceId(rng);
    } else {
      ctx.request_id = randomTraceId(rng);
    }
    kept += sampling.keep(ctx) ? 1 : 0;
  }
  return kept;
}

TEST(LogSampling, KeepsAboutTheFractionAsked) {
  // 20,000 draws: the binomial standard deviation at 10% is ~42, so ±250 fails only if broken.
  EXPECT_NEAR(keptOf(LogSampling(0.1), 20000, 1), 2000, 250);
  EXPECT_NEAR(keptOf(LogSampling(0.5), 20000, 2), 10000, 400);
  EXPECT_NEAR(keptOf(LogSampling(0.1), 20000, 3, /*trace_ids=*/false), 2000, 250);
  EXPECT_EQ(keptOf(LogSampling(0), 5000, 4), 0);
  EXPECT_EQ(keptOf(LogSampling(1), 5000, 5), 5000);
  EXPECT_TRUE(LogSampling(1).keepsEverything());
  EXPECT_FALSE(LogSampling(0.999).keepsEverything());
}

TEST(LogSampling, TheSameTraceGetsTheSameAnswerEverywhere) {
  const LogSampling a(0.3);
  const LogSampling b(0.3);  // another process, same setting
  std::mt19937_64 rng(7);
  int kept = 0;
  for (int i = 0; i < 2000; ++i) {
    RequestContext first;
    first.trace_id = randomTraceId(rng);
    first.request_id = "one";
    RequestContext second = first;
    second.request_id = "another";  // another hop: same trace, its own request id
    second.span_id = "0123456789abcdef";
    EXPECT_EQ(a.keep(first), b.keep(second)) << first.trace_id;
    kept += a.keep(first) ? 1 : 0;
  }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, 2000);
}

TEST(LogSampling, ACallerThatSamplesItsTraceAlwaysGetsTheLine) {
  const LogSampling none(0);
  RequestContext ctx;
  ctx.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  EXPECT_FALSE(none.keep(ctx));
  ctx.trace_sampled_by_caller = true;
  EXPECT_TRUE(none.keep(ctx));
}

}  // namespace
}  // namespace viscount
