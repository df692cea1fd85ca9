// The admin endpoints: health, readiness, Prometheus metrics, the effective config and drain.

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"

namespace viscount::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

HttpResponse admin(ProxyUnderTest& proxy, const std::string& method, const std::string& path) {
  auto r = httpRequest(proxy.adminPort(), method, path);
  EXPECT_TRUE(r) << method << " " << path;
  return r ? *r : HttpResponse{};
}

TEST(Admin, HealthAndReady) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto health = admin(proxy, "GET", "/healthz");
  EXPECT_EQ(health.status, 200);
  auto ready = admin(proxy, "GET", "/ready");
  EXPECT_EQ(ready.status, 200);
  // Query strings do not change the route.
  EXPECT_EQ(admin(proxy, "GET", "/ready?verbose=1").status, 200);

  RawConnection head(proxy.adminPort());
  ASSERT_TRUE(head.send(buildRequest("HEAD", "/healthz")));
  auto h = head.readResponse(/*head_request=*/true);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_TRUE(h->body.empty());
}

TEST(Admin, UnknownPathAndWrongMethod) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  EXPECT_EQ(admin(proxy, "GET", "/nope").status, 404);
  EXPECT_EQ(admin(proxy, "GET", "/").status, 404);
  EXPECT_EQ(admin(proxy, "GET", "/metrics/extra").status, 404);
  EXPECT_EQ(admin(proxy, "POST", "/healthz").status, 405);
  EXPECT_EQ(admin(proxy, "DELETE", "/metrics").status, 405);
  EXPECT_EQ(admin(proxy, "PUT", "/config").status, 405);
  EXPECT_EQ(admin(proxy, "GET", "/drain").status, 405);
  // None of those started a drain.
  EXPECT_EQ(admin(proxy, "GET", "/ready").status, 200);
  EXPECT_EQ(upstream.requestCount(), 0u);
}

TEST(Admin, MetricsCountRequestsByCode) {
  TestUpstream upstream([](const ReceivedRequest& req) {
    UpstreamReply r;
    r.status = req.target == "/missing" ? 404 : 200;
    r.body = "x";
    return r;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  constexpr int kOk = 7;
  constexpr int kMissing = 3;
  for (int i = 0; i < kOk; ++i) {
    auto r = httpRequest(proxy.port(), "GET", "/ok");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
  }
  for (int i = 0; i < kMissing; ++i) {
    auto r = httpRequest(proxy.port(), "GET", "/missing");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 404);
  }
  const std::string ok_series = R"(viscount_requests_total{upstream="app",code="200"})";
  const std::string missing_series = R"(viscount_requests_total{upstream="app",code="404"})";
  // A request is counted when it completes, just after its last byte is written.
  std::string text;
  ASSERT_TRUE(eventually([&] {
    auto m = admin(proxy, "GET", "/metrics");
    text = m.body;
    return metricSample(text, ok_series) == kOk && metricSample(text, missing_series) == kMissing;
  })) << text;

  auto m = admin(proxy, "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.header("content-type").find("text/plain"), std::string::npos);
  text = m.body;
  EXPECT_EQ(metricSample(text, ok_series), kOk);
  EXPECT_EQ(metricSample(text, missing_series), kMissing);
  EXPECT_NE(text.find("# TYPE viscount_requests_total counter"), std::string::npos);

  // The duration histogram: cumulative buckets ending in +Inf, _sum and _count.
  EXPECT_NE(text.find("# TYPE viscount_request_duration_seconds histogram"), std::string::npos);
  const std::regex bucket_re(
      R"re(^viscount_request_duration_seconds_bucket\{upstream="app",le="([^"]+)"\} (\d+)$)re");
  std::istringstream in(text);
  std::string line;
  std::vector<std::pair<std::string, double>> buckets;
  while (std::getline(in, line)) {
    std::smatch mm;
    if (std::regex_match(line, mm, bucket_re)) buckets.emplace_back(mm[1], std::stod(mm[2]));
  }
  ASSERT_GE(buckets.size(), 2u) << text;
  EXPECT_EQ(buckets.back().first, "+Inf");
  EXPECT_EQ(buckets.back().second, kOk + kMissing);
  for (size_t i = 1; i < buckets.size(); ++i) {
    EXPECT_GE(buckets[i].second, buckets[i - 1].second) << "buckets are cumulative";
    if (buckets[i].first != "+Inf") {
      EXPECT_GT(std::stod(buckets[i].first), std::stod(buckets[i - 1].first));
    }
  }
  EXPECT_EQ(metricSample(text, R"(viscount_request_duration_seconds_count{upstream="app"})"),
            kOk + kMissing);
  const double sum = metricSample(text, R"(viscount_request_duration_seconds_sum{upstream="app"})");
  EXPECT_GT(sum, 0.0);
  EXPECT_LT(sum, 10.0);

  EXPECT_EQ(metricSample(text, "viscount_access_log_dropped_total"), 0) << text;
  EXPECT_NE(text.find("# TYPE viscount_access_log_dropped_total counter"), std::string::npos);
  // The gauges the contract names are there too.
  EXPECT_NE(text.find(R"(viscount_upstream_queue_depth{upstream="app"})"), std::string::npos);
  EXPECT_NE(text.find("# TYPE viscount_upstream_connections gauge"), std::string::npos);
  EXPECT_NE(text.find("# TYPE viscount_rejected_total counter"), std::string::npos);
}

TEST(Admin, MetricsCountProxyErrors) {
  RefusingPort dead;
  ProxyUnderTest proxy(defaultConfig(dead.port()));
  for (int i = 0; i < 2; ++i) {
    auto r = httpRequest(proxy.port(), "GET", "/down");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 502);
  }
  const std::string series = R"(viscount_requests_total{upstream="app",code="502"})";
  std::string text;
  EXPECT_TRUE(eventually([&] {
    text = admin(proxy, "GET", "/metrics").body;
    return metricSample(text, series) == 2;
  })) << text;
  EXPECT_EQ(metricSample(text, R"(viscount_requests_total{upstream="app",code="200"})"), -1)
      << text;
}

TEST(Admin, ConfigShowsEffectiveValues) {
  TestUpstream upstream;
  const std::string yaml = withPort(R"(workers: 2
drain_timeout: 7s
listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
    limits:
      max_request_body_size: 2KiB
upstreams:
  - name: app
    url: http://127.0.0.1:{port}
    timeouts:
      request: 1500ms
    pool:
      size: 3
context:
  request_id:
    header: x-trace-me
    generate: uuid7
  trusted_sources: [10.0.0.0/8]
admin:
  address: 127.0.0.1:0
logging:
  level: debug
)",
                                    upstream.port());
  ProxyUnderTest proxy(yaml);
  auto r = admin(proxy, "GET", "/config");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.header("content-type").find("application/json"), std::string::npos);
  json c = json::parse(r.body);
  EXPECT_EQ(c["workers"], 2);
  EXPECT_EQ(c["drain_timeout"], "7s");
  ASSERT_EQ(c["listeners"].size(), 1u);
  EXPECT_EQ(c["listeners"][0]["name"], "inbound");
  EXPECT_EQ(c["listeners"][0]["upstream"], "app");
  EXPECT_EQ(c["listeners"][0]["limits"]["max_request_body_size"], 2048);
  // Defaults are filled in.
  EXPECT_EQ(c["listeners"][0]["limits"]["max_request_headers_size"], 60 * 1024);
  EXPECT_EQ(c["listeners"][0]["timeouts"]["idle"], "5m");
  ASSERT_EQ(c["upstreams"].size(), 1u);
  EXPECT_EQ(c["upstreams"][0]["url"], "http://127.0.0.1:" + std::to_string(upstream.port()));
  EXPECT_EQ(c["upstreams"][0]["timeouts"]["request"], "1500ms");
  EXPECT_EQ(c["upstreams"][0]["timeouts"]["connect"], "1s");
  EXPECT_EQ(c["upstreams"][0]["pool"]["size"], 3);
  EXPECT_EQ(c["upstreams"][0]["pool"]["max_overflow"], 20);
  EXPECT_EQ(c["context"]["request_id"]["header"], "x-trace-me");
  EXPECT_EQ(c["context"]["request_id"]["generate"], "uuid7");
  EXPECT_EQ(c["context"]["correlation_id"]["header"], "x-correlation-id");
  EXPECT_EQ(c["context"]["trusted_sources"], json::array({"10.0.0.0/8"}));
  EXPECT_EQ(c["context"]["trace_context"], true);
  EXPECT_EQ(c["logging"]["level"], "debug");
  EXPECT_TRUE(c["admin"]["address"].is_string());
}

TEST(Admin, PostDrainStartsDrain) {
  // A request kept in flight holds the drain open, so the admin endpoint stays up to ask.
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.hang = true;
    return r;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection in_flight(proxy.port());
  ASSERT_TRUE(in_flight.send(buildRequest("GET", "/hold")));
  ASSERT_TRUE(eventually([&] { return upstream.requestCount() == 1; }));

  EXPECT_EQ(admin(proxy, "GET", "/ready").status, 200);
  auto d = admin(proxy, "POST", "/drain");
  EXPECT_EQ(d.status, 202);
  EXPECT_EQ(admin(proxy, "GET", "/ready").status, 503);
  // Health is about the process, not readiness.
  EXPECT_EQ(admin(proxy, "GET", "/healthz").status, 200);
  // A second drain request is harmless.
  EXPECT_EQ(admin(proxy, "POST", "/drain").status, 202);
  EXPECT_EQ(admin(proxy, "GET", "/ready").status, 503);
}

}  // namespace
}  // namespace viscount::test
