#include "telemetry/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

#include <atomic>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/telemetry/telemetry_test_support.h"

namespace viscount {
namespace {

using testing::typicalRequest;

// Sample lines of an exposition, keyed by "name{labels}" exactly as rendered.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    const std::string value = line.substr(space + 1);
    out[line.substr(0, space)] = value == "+Inf" ? INFINITY : std::stod(value);
  }
  return out;
}

RequestContext request(int status, double seconds, ErrorCode error = ErrorCode::kNone) {
  RequestContext ctx = typicalRequest();
  ctx.status = status;
  ctx.error = error;
  ctx.end = ctx.start +
            std::chrono::duration_cast<MonoTime::duration>(std::chrono::duration<double>(seconds));
  ctx.upstream_start.reset();
  ctx.upstream_end.reset();
  return ctx;
}

TEST(Metrics, CountersAreSummedOverShards) {
  Metrics metrics(2);
  auto& a = metrics.shard(0);
  auto& b = metrics.shard(1);
  for (int i = 0; i < 3; ++i)
    a.requestCompleted(a.upstream("app"), request(200, 0.001));
  for (int i = 0; i < 2; ++i)
    b.requestCompleted(b.upstream("app"), request(200, 0.001));
  b.requestCompleted(b.upstream("app"), request(0, 0.001, ErrorCode::kClientDisconnected));
  a.requestCompleted(a.upstream("other"), request(503, 0.001, ErrorCode::kOverloaded));

  const auto s = samples(metrics.renderPrometheus());
  EXPECT_EQ(s.at(R"(viscount_requests_total{upstream="app",code="200"})"), 5);
  EXPECT_EQ(s.at(R"(viscount_requests_total{upstream="app",code="0"})"), 1);
  EXPECT_EQ(s.at(R"(viscount_requests_total{upstream="other",code="503"})"), 1);
  EXPECT_EQ(s.count(R"(viscount_requests_total{upstream="other",code="200"})"), 0U);
  EXPECT_EQ(s.at(R"(viscount_request_errors_total{upstream="app",error="client_disconnected"})"),
            1);
  EXPECT_EQ(s.at(R"(viscount_request_errors_total{upstream="other",error="overloaded"})"), 1);
  EXPECT_EQ(s.at(R"(viscount_request_duration_seconds_count{upstream="app"})"), 6);
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  Metrics metrics(2);
  auto& a = metrics.shard(0);
  auto& b = metrics.shard(1);
  a.requestCompleted(a.upstream("app"), request(200, 0.0003));
  a.requestCompleted(a.upstream("app"), request(200, 0.0005));  // on a bound: le is inclusive
  b.requestCompleted(b.upstream("app"), request(200, 0.002));
  b.requestCompleted(b.upstream("app"), request(200, 0.3));
  a.requestCompleted(a.upstream("app"), request(200, 20));

  const auto s = samples(metrics.renderPrometheus());
  const auto bucket = [&](const std::string& le) {
    return s.at(R"(viscount_request_duration_seconds_bucket{upstream="app",le=")" + le + "\"}");
  };
  EXPECT_EQ(bucket("0.0005"), 2);
  EXPECT_EQ(bucket("0.001"), 2);
  EXPECT_EQ(bucket("0.0025"), 3);
  EXPECT_EQ(bucket("0.25"), 3);
  EXPECT_EQ(bucket("0.5"), 4);
  EXPECT_EQ(bucket("10"), 4);
  EXPECT_EQ(bucket("+Inf"), 5);
  EXPECT_EQ(s.at(R"(viscount_request_duration_seconds_count{upstream="app"})"), 5);
  EXPECT_NEAR(s.at(R"(viscount_request_duration_seconds_sum{upstream="app"})"), 20.3028, 1e-6);
  // No request reached the upstream: the upstream histogram exists but is empty.
  EXPECT_EQ(s.at(R"(viscount_upstream_request_duration_seconds_count{upstream="app"})"), 0);
}

TEST(Metrics, UpstreamTimeIsObservedWhenTheUpstreamWasReached) {
  Metrics metrics(1);
  auto& shard = metrics.shard(0);
  shard.requestCompleted(shard.upstream("app"), typicalRequest());  // 1.8 ms on the upstream
  const auto s = samples(metrics.renderPrometheus());
  EXPECT_EQ(s.at(R"(viscount_upstream_request_duration_seconds_bucket{upstream="app",le="0.001"})"),
            0);
  EXPECT_EQ(
      s.at(R"(viscount_upstream_request_duration_seconds_bucket{upstream="app",le="0.0025"})"), 1);
  EXPECT_NEAR(s.at(R"(viscount_upstream_request_duration_seconds_sum{upstream="app"})"), 0.0018,
              1e-9);
}

TEST(Metrics, GaugesAndOtherCounters) {
  Metrics metrics(2);
  auto& a = metrics.shard(0);
  auto& b = metrics.shard(1);
  a.rejected("overloaded");
  b.rejected("overloaded");
  b.rejected("draining");
  a.downstreamConnectionOpened("inbound");
  a.downstreamConnectionOpened("inbound");
  b.downstreamConnectionOpened("inbound");
  a.downstreamConnectionClosed("inbound");
  UpstreamMetrics& up_a = a.upstream("app");
  UpstreamMetrics& up_b = b.upstream("app");
  a.upstreamConnections(up_a, "active", 2);
  a.upstreamConnections(up_a, "idle", 1);
  b.upstreamConnections(up_b, "active", 1);
  b.upstreamConnections(up_b, "active", -1);
  a.upstreamQueueDepth(up_a, 3);
  b.upstreamQueueDepth(up_b, 1);
  a.upstreamConnectFailed(up_a);
  b.upstreamConnectionReused(up_b);
  b.upstreamConnectionReused(up_b);
  metrics.setAccessLogDroppedSource([] { return uint64_t{17}; });

  const auto s = samples(metrics.renderPrometheus());
  EXPECT_EQ(s.at(R"(viscount_rejected_total{reason="overloaded"})"), 2);
  EXPECT_EQ(s.at(R"(viscount_rejected_total{reason="draining"})"), 1);
  EXPECT_EQ(s.at(R"(viscount_downstream_connections{listener="inbound"})"), 2);
  EXPECT_EQ(s.at(R"(viscount_downstream_connections_total{listener="inbound"})"), 3);
  EXPECT_EQ(s.at(R"(viscount_upstream_connections{upstream="app",state="active"})"), 2);
  EXPECT_EQ(s.at(R"(viscount_upstream_connections{upstream="app",state="idle"})"), 1);
  EXPECT_EQ(s.at(R"(viscount_upstream_connections{upstream="app",state="connecting"})"), 0);
  EXPECT_EQ(s.at(R"(viscount_upstream_queue_depth{upstream="app"})"), 4);
  EXPECT_EQ(s.at(R"(viscount_upstream_connect_failures_total{upstream="app"})"), 1);
  EXPECT_EQ(s.at(R"(viscount_upstream_connections_reused_total{upstream="app"})"), 2);
  EXPECT_EQ(s.at("viscount_access_log_dropped_total"), 17);
  EXPECT_GT(s.at("viscount_process_start_time_seconds"), 1.7e9);
  const auto build = s.lower_bound("viscount_build_info{version=\"");
  ASSERT_NE(build, s.end());
  EXPECT_TRUE(build->first.starts_with("viscount_build_info{version=\"")) << build->first;
  EXPECT_EQ(build->second, 1);
}

TEST(Metrics, EveryFamilyHasHelpAndType) {
  Metrics metrics(1);
  const std::string text = metrics.renderPrometheus();
  for (const char* family :
       {"viscount_build_info gauge", "viscount_process_start_time_seconds gauge",
        "viscount_requests_total counter", "viscount_request_errors_total counter",
        "viscount_request_duration_seconds histogram",
        "viscount_upstream_request_duration_seconds histogram",
        "viscount_upstream_connections gauge", "viscount_upstream_queue_depth gauge",
        "viscount_upstream_connect_failures_total counter",
        "viscount_upstream_connections_reused_total counter", "viscount_rejected_total counter",
        "viscount_downstream_connections gauge", "viscount_downstream_connections_total counter",
        "viscount_access_log_dropped_total counter"}) {
    const std::string type_line = std::string("# TYPE ") + family + "\n";
    EXPECT_NE(text.find(type_line), std::string::npos) << family;
    const std::string name = std::string(family).substr(0, std::string(family).find(' '));
    EXPECT_NE(text.find("# HELP " + name + " "), std::string::npos) << name;
  }
  EXPECT_EQ(samples(text).at("viscount_access_log_dropped_total"), 0);
}

TEST(Metrics, LabelValuesAreEscaped) {
  Metrics metrics(1);
  auto& shard = metrics.shard(0);
  shard.requestCompleted(shard.upstream("we\"ird\\name\nx"), request(200, 0.001));
  shard.rejected("a\"b");
  const std::string text = metrics.renderPrometheus();
  EXPECT_NE(text.find(R"(viscount_requests_total{upstream="we\"ird\\name\nx",code="200"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(viscount_rejected_total{reason="a\"b"} 1)"), std::string::npos);
}

TEST(Metrics, OutOfRangeStatusAndErrorCodes) {
  Metrics metrics(1);
  auto& shard = metrics.shard(0);
  shard.requestCompleted(shard.upstream("app"), request(-1, 0.001));
  shard.requestCompleted(shard.upstream("app"), request(1234, 0.001));
  shard.requestCompleted(shard.upstream("app"), request(999, 0.001, static_cast<ErrorCode>(200)));
  const auto s = samples(metrics.renderPrometheus());
  EXPECT_EQ(s.at(R"(viscount_requests_total{upstream="app",code="0"})"), 2);
  EXPECT_EQ(s.at(R"(viscount_requests_total{upstream="app",code="999"})"), 1);
  EXPECT_EQ(s.at(R"(viscount_request_errors_total{upstream="app",error="internal_error"})"), 1);
}

// One render must be internally consistent: buckets of a series never decrease, +Inf equals _count,
// and no counter is below its value in the previous render.
::testing::AssertionResult consistent(const std::string& text,
                                      const std::map<std::string, double>& previous) {
  std::istringstream in(text);
  std::string line;
  double cumulative = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    const std::string key = line.substr(0, space);
    const double value = std::stod(line.substr(space + 1));
    if (key.find("_bucket{") != std::string::npos) {
      if (key.find("le=\"0.0005\"") != std::string::npos) cumulative = 0;
      if (value < cumulative) return ::testing::AssertionFailure() << "bucket decreases: " << line;
      cumulative = value;
    } else if (key.find("_count{") != std::string::npos && value != cumulative) {
      return ::testing::AssertionFailure() << "_count differs from +Inf: " << line;
    }
    const bool counter = key.find("_total") != std::string::npos ||
                         key.find("_bucket{") != std::string::npos ||
                         key.find("_count{") != std::string::npos;
    if (const auto it = previous.find(key); counter && it != previous.end() && value < it->second) {
      return ::testing::AssertionFailure() << "counter went back: " << line;
    }
  }
  return ::testing::AssertionSuccess();
}

// Render runs on the admin thread while the workers count and register new series.
TEST(Metrics, RenderWhileWorkersCount) {
  constexpr int kShards = 2;
  constexpr int kRequests = 200000;
  Metrics metrics(kShards);
  std::atomic<int> finished{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kShards; ++w) {
    workers.emplace_back([&metrics, &finished, w] {
      MetricsShard& shard = metrics.shard(static_cast<size_t>(w));
      UpstreamMetrics& app = shard.upstream("app");
      const int statuses[] = {200, 201, 404, 503};
      for (int i = 0; i < kRequests; ++i) {
        shard.requestCompleted(app, request(statuses[i % 4], (i % 1000) * 1e-4));
        if (i % 1000 == 0) shard.rejected("reason-" + std::to_string(i / 1000 % 50));
        if (i % 5000 == 0) shard.upstream("late-" + std::to_string(i / 5000));
        shard.downstreamConnectionOpened("inbound");
        shard.downstreamConnectionClosed("inbound");
      }
      finished.fetch_add(1);
    });
  }
  std::map<std::string, double> previous;
  int renders = 0;
  do {
    const std::string text = metrics.renderPrometheus();
    ASSERT_TRUE(consistent(text, previous));
    previous = samples(text);
    ++renders;
  } while (finished.load() < kShards);
  for (auto& w : workers)
    w.join();
  EXPECT_GT(renders, 1);

  const auto s = samples(metrics.renderPrometheus());
  EXPECT_EQ(s.at(R"(viscount_requests_total{upstream="app",code="200"})"), kShards * kRequests / 4);
  EXPECT_EQ(s.at(R"(viscount_request_duration_seconds_count{upstream="app"})"),
            kShards * kRequests);
  EXPECT_EQ(s.at(R"(viscount_downstream_connections{listener="inbound"})"), 0);
  EXPECT_EQ(s.at(R"(viscount_downstream_connections_total{listener="inbound"})"),
            kShards * kRequests);
  EXPECT_EQ(s.at(R"(viscount_rejected_total{reason="reason-0"})"), kShards * 4);
  EXPECT_EQ(s.count(R"(viscount_upstream_queue_depth{upstream="late-39"})"), 1U);
}

}  // namespace
}  // namespace viscount
