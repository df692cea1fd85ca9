// The basic path: a request goes through, comes back, and is logged once with its ids.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"

namespace viscount::test {
namespace {

TEST(BasicProxy, ForwardsGetAndEchoesIds) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto r = httpRequest(proxy.port(), "GET", "/hello?x=1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto seen = nlohmann::json::parse(r->body);
  EXPECT_EQ(seen["target"], "/hello?x=1");
  EXPECT_EQ(seen["request_id_count"], 1);
  EXPECT_EQ(seen["request_id"], r->header("x-request-id"));
  EXPECT_EQ(seen["correlation_id"], r->header("x-correlation-id"));
  EXPECT_EQ(r->count("x-request-id"), 1u);

  auto log = proxy.accessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["request_id"], r->header("x-request-id"));
  EXPECT_EQ(log[0]["status"], 200);
  EXPECT_EQ(log[0]["method"], "GET");
  EXPECT_EQ(log[0]["path"], "/hello?x=1");
  EXPECT_EQ(log[0]["attempts"], 1);
  EXPECT_TRUE(log[0]["error"].is_null());
}

TEST(BasicProxy, KeepAliveReusesBothConnections) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c.send(buildRequest("GET", "/n/" + std::to_string(i))));
    auto r = c.readResponse();
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(upstream.requestCount(), 20u);
  // Sequential requests on one client connection stay on one worker and reuse one upstream
  // connection.
  EXPECT_EQ(upstream.connectionsAccepted(), 1);
}

TEST(BasicProxy, PostBodyArrives) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto r =
      httpRequest(proxy.port(), "POST", "/submit", {{"Content-Type", "text/plain"}}, "hello body");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].body, "hello body");
  auto log = proxy.accessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["bytes_in"], 10);
}

}  // namespace
}  // namespace viscount::test
