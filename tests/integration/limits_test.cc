// Batching limits of an upstream (upstreams[].limits) and deadline propagation, end to end: the
// concurrency limit holds over all workers, excess requests queue and are served in turn, a full
// queue or a queue timeout is a 503 with retry-after and error `overloaded`, a client that leaves
// gives its place back at once, and no slot leaks under a storm of aborting clients.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/expectations.h"
#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"

namespace viscount::test {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using std::chrono::milliseconds;

std::string limitsConfig(uint16_t port, const std::string& limits, int workers = 2,
                         const std::string& extra = "") {
  return singleUpstreamConfig(
      port, workers, "    pool: {size: 50, max_overflow: 50}\n    limits:\n" + limits, extra);
}

double queueDepth(ProxyUnderTest& proxy) {
  return scrapeMetric(proxy.adminPort(), R"(viscount_upstream_queue_depth{upstream="app"})");
}
double inFlight(ProxyUnderTest& proxy) {
  return scrapeMetric(proxy.adminPort(), R"(viscount_upstream_requests_in_flight{upstream="app"})");
}

long msSince(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

// Counts requests inside the upstream handler at once; /slow holds each for `hold`, or, with
// `gated`, until release() (so a test can tell what happened while a request was still held,
// whatever the machine's speed).
struct ConcurrencyProbe {
  std::atomic<int> now{0};
  std::atomic<int> peak{0};
  milliseconds hold{150};
  bool gated = false;

  UpstreamReply handle(const ReceivedRequest& r) {
    const int n = ++now;
    for (int p = peak.load(); n > p && !peak.compare_exchange_weak(p, n);) {
    }
    if (r.target.rfind("/slow", 0) == 0) {
      if (gated) {
        std::unique_lock lock(mutex);
        // The bound only keeps a test that forgot to release from hanging.
        released_cv.wait_for(lock, std::chrono::seconds(60), [&] { return released; });
      } else {
        std::this_thread::sleep_for(hold);
      }
    }
    --now;
    UpstreamReply reply;
    reply.body = "ok " + r.target;
    return reply;
  }
  void release() {
    {
      std::lock_guard lock(mutex);
      released = true;
    }
    released_cv.notify_all();
  }

  std::mutex mutex;
  std::condition_variable released_cv;
  bool released = false;
};

void expectOverloaded(const std::optional<HttpResponse>& r) {
  ASSERT_TRUE(r);
  expectProxyError(*r, 503, "overloaded");
}

TEST(Limits, ConcurrencyLimitHoldsAcrossWorkersAndTheQueueServesEveryone) {
  ConcurrencyProbe probe;
  TestUpstream upstream([&](const ReceivedRequest& r) { return probe.handle(r); });
  ProxyUnderTest proxy(limitsConfig(upstream.port(), R"(      max_concurrent_requests: 3
      max_queued_requests: 100
      queue_timeout: 10s
)"));
  constexpr int kClients = 24;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto r = httpRequest(proxy.port(), "GET", "/slow/" + std::to_string(i));
      if (r && r->status == 200 && r->body == "ok /slow/" + std::to_string(i)) ++ok;
    });
  }
  for (auto& t : clients)
    t.join();
  EXPECT_EQ(ok.load(), kClients);
  // Over both workers, never more than the limit; and queueing is not serialising.
  EXPECT_LE(probe.peak.load(), 3);
  EXPECT_EQ(probe.peak.load(), 3);
  EXPECT_TRUE(eventually([&] { return inFlight(proxy) == 0 && queueDepth(proxy) == 0; }));
}

TEST(Limits, FullQueueIsRefusedAtOnceWith503Overloaded) {
  // "At once" is a behaviour, not a speed: the refusal comes while the holder is still in the
  // upstream and the queued request still queued, i.e. without waiting for a place to free up,
  // and well before the queue timeout.
  ConcurrencyProbe probe;
  probe.gated = true;
  TestUpstream upstream([&](const ReceivedRequest& r) { return probe.handle(r); });
  ProxyUnderTest proxy(limitsConfig(upstream.port(), R"(      max_concurrent_requests: 1
      max_queued_requests: 1
      queue_timeout: 10s
)",
                                    1));
  std::optional<HttpResponse> held, queued_response;
  std::thread holder([&] { held = httpRequest(proxy.port(), "GET", "/slow/holder"); });
  ASSERT_TRUE(eventually([&] { return probe.now.load() == 1; }));
  std::thread queued([&] { queued_response = httpRequest(proxy.port(), "GET", "/slow/queued"); });
  ASSERT_TRUE(eventually([&] { return queueDepth(proxy) == 1; }));

  const auto r = httpRequest(proxy.port(), "GET", "/shed");
  expectOverloaded(r);
  EXPECT_EQ(probe.now.load(), 1) << "the holder left the upstream before the refusal";
  EXPECT_EQ(queueDepth(proxy), 1) << "the queue moved before the refusal";
  EXPECT_EQ(scrapeMetric(proxy.adminPort(), R"(viscount_rejected_total{reason="queue_full"})"), 1);
  EXPECT_LT(scrapeMetric(proxy.adminPort(), R"(viscount_rejected_total{reason="queue_timeout"})"),
            1)
      << "absent or zero: nothing waited out the queue timeout";

  probe.release();
  holder.join();
  queued.join();
  // Both waiting requests are served once the holder lets go.
  ASSERT_TRUE(held && queued_response);
  EXPECT_EQ(held->status, 200);
  EXPECT_EQ(queued_response->status, 200);
  EXPECT_EQ(upstream.requestCount(), 2u);  // the refused request never reached the upstream
  const auto lines = proxy.accessLog(3);
  int overloaded = 0;
  for (const auto& line : lines) {
    if (line["error"] == "overloaded") {
      ++overloaded;
      EXPECT_EQ(line["status"], 503);
      EXPECT_EQ(line["path"], "/shed");
      EXPECT_EQ(line["attempts"], 0);
      EXPECT_TRUE(line["upstream_ms"].is_null());
    }
  }
  EXPECT_EQ(overloaded, 1);
}

TEST(Limits, QueueTimeoutIs503OverloadedAfterTheTimeout) {
  // The holder stays in the upstream until released, so the queued request can only end by its
  // queue timeout: never before it, and while the holder is still there.
  ConcurrencyProbe probe;
  probe.gated = true;
  TestUpstream upstream([&](const ReceivedRequest& r) { return probe.handle(r); });
  ProxyUnderTest proxy(limitsConfig(upstream.port(), R"(      max_concurrent_requests: 1
      max_queued_requests: 10
      queue_timeout: 300ms
)"));
  std::thread holder([&] { httpRequest(proxy.port(), "GET", "/slow/holder"); });
  ASSERT_TRUE(eventually([&] { return probe.now.load() == 1; }));
  const auto start = Clock::now();
  const auto r = httpRequest(proxy.port(), "GET", "/waits");
  const long waited = msSince(start);
  expectOverloaded(r);
  EXPECT_GE(waited, 280) << "refused before the queue timeout";
  EXPECT_EQ(probe.now.load(), 1) << "the holder left the upstream before the refusal";
  EXPECT_EQ(scrapeMetric(proxy.adminPort(), R"(viscount_rejected_total{reason="queue_timeout"})"),
            1);
  EXPECT_EQ(scrapeMetric(proxy.adminPort(), R"(viscount_timeouts_total{kind="queue"})"), 1);
  probe.release();
  holder.join();
  EXPECT_EQ(upstream.requestCount(), 1u);
}

TEST(Limits, ClientLeavingTheQueueGivesItsPlaceBackAtOnce) {
  ConcurrencyProbe probe;
  probe.hold = milliseconds(800);
  TestUpstream upstream([&](const ReceivedRequest& r) { return probe.handle(r); });
  ProxyUnderTest proxy(limitsConfig(upstream.port(), R"(      max_concurrent_requests: 1
      max_queued_requests: 1
      queue_timeout: 10s
)",
                                    1));
  std::thread holder([&] { httpRequest(proxy.port(), "GET", "/slow/holder"); });
  ASSERT_TRUE(eventually([&] { return probe.now.load() == 1; }));
  {
    RawConnection leaver(proxy.port());
    ASSERT_TRUE(leaver.send(buildRequest("GET", "/left")));
    ASSERT_TRUE(eventually([&] { return queueDepth(proxy) == 1; }));
  }  // closed while queued
  ASSERT_TRUE(eventually([&] { return queueDepth(proxy) == 0; }));
  // The place is free again: this one queues instead of being refused, and is served.
  const auto r = httpRequest(proxy.port(), "GET", "/next");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  holder.join();
  for (const auto& req : upstream.requests())
    EXPECT_NE(req.target, "/left");
  const auto lines = proxy.accessLog(3);
  bool logged = false;
  for (const auto& line : lines) {
    if (line["path"] == "/left") {
      logged = true;
      EXPECT_EQ(line["error"], "client_disconnected");
      EXPECT_EQ(line["attempts"], 0);
    }
  }
  EXPECT_TRUE(logged);
}

TEST(Limits, AbortStormLeaksNoSlotAndTheFullLimitIsUsableAfterwards) {
  // 200 concurrent clients, half of which hang up at a random moment (queued, in flight or
  // while the response is on its way). Afterwards every slot and queue place is back.
  constexpr int kLimit = 5;
  std::mutex m;
  std::condition_variable cv;
  int at_barrier = 0;
  TestUpstream upstream([&](const ReceivedRequest& r) {
    if (r.target == "/barrier") {
      // Answers only once kLimit requests are inside together: proves kLimit slots are free.
      std::unique_lock lock(m);
      ++at_barrier;
      cv.notify_all();
      const bool all =
          cv.wait_for(lock, std::chrono::seconds(5), [&] { return at_barrier >= kLimit; });
      UpstreamReply reply;
      reply.status = all ? 200 : 500;
      return reply;
    }
    std::this_thread::sleep_for(milliseconds(5 + (r.target.size() * 7) % 40));
    UpstreamReply reply;
    reply.body = std::string(2000, 'x');
    return reply;
  });
  ProxyUnderTest proxy(limitsConfig(upstream.port(), R"(      max_concurrent_requests: 5
      max_queued_requests: 300
      queue_timeout: 20s
)"));
  std::vector<std::thread> clients;
  std::atomic<int> answered{0};
  std::atomic<int> aborted{0};
  for (int i = 0; i < 200; ++i) {
    clients.emplace_back([&, i] {
      std::mt19937 rng(i);
      RawConnection c(proxy.port());
      if (!c.send(buildRequest("GET", "/storm/" + std::to_string(i)))) return;
      if (rng() % 2 == 0) {
        std::this_thread::sleep_for(milliseconds(rng() % 300));
        ++aborted;
        return;  // hangs up
      }
      auto r = c.readResponse(false, std::chrono::seconds(30));
      if (r && r->status == 200) ++answered;
    });
  }
  for (auto& t : clients)
    t.join();
  EXPECT_EQ(answered.load() + aborted.load(), 200);
  ASSERT_TRUE(eventually([&] { return inFlight(proxy) == 0 && queueDepth(proxy) == 0; },
                         milliseconds(10000)));
  std::cout << "[ measure ] abort storm: " << answered.load() << " answered, " << aborted.load()
            << " aborted; in flight and queued afterwards: 0\n";

  std::vector<std::thread> probes;
  std::atomic<int> ok{0};
  for (int i = 0; i < kLimit; ++i) {
    probes.emplace_back([&] {
      auto r = httpRequest(proxy.port(), "GET", "/barrier");
      if (r && r->status == 200) ++ok;
    });
  }
  for (auto& t : probes)
    t.join();
  EXPECT_EQ(ok.load(), kLimit) << "all " << kLimit << " slots must be usable after the storm";
}

// ---- deadline propagation ------------------------------------------------------------------

TEST(Deadline, RemainingBudgetIsSentUpstream) {
  TestUpstream upstream;
  ProxyUnderTest proxy(withPort(R"(workers: 1
listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
upstreams:
  - name: app
    url: http://127.0.0.1:{port}
    timeouts:
      request: 2s
admin:
  address: off
)",
                                upstream.port()));
  // The client's own copy is replaced; a trusted client may only lower the budget.
  auto r = httpRequest(proxy.port(), "GET", "/a", {{"X-Request-Timeout-Ms", "999999"}});
  ASSERT_TRUE(r);
  r = httpRequest(proxy.port(), "GET", "/b", {{"x-request-timeout-ms", "700"}});
  ASSERT_TRUE(r);
  const auto requests = upstream.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].count("x-request-timeout-ms"), 1u);
  const long a = std::stol(requests[0].header("x-request-timeout-ms"));
  EXPECT_GT(a, 1500);
  EXPECT_LE(a, 2000);
  const long b = std::stol(requests[1].header("x-request-timeout-ms"));
  EXPECT_GT(b, 400);
  EXPECT_LE(b, 700);
}

TEST(Deadline, TrustedSmallerBudgetEndsTheRequestSooner) {
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply reply;
    reply.delay = milliseconds(1500);
    return reply;
  });
  ProxyUnderTest proxy(withPort(R"(workers: 1
listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
upstreams:
  - name: app
    url: http://127.0.0.1:{port}
    timeouts:
      request: 10s
admin:
  address: off
)",
                                upstream.port()));
  const auto start = Clock::now();
  auto r = httpRequest(proxy.port(), "GET", "/", {{"x-request-timeout-ms", "300"}});
  const long took = msSince(start);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504);
  EXPECT_EQ(json::parse(r->body)["error"], "upstream_timeout");
  // The budget, not the configured 10 s timeout, ended it; the upstream's 1.5 s answer would
  // have been a 200.
  EXPECT_GE(took, 280);
  EXPECT_LT(took, 10000);
}

TEST(Deadline, TrustedBudgetBeyondADurationIsIgnored) {
  // 2^63 and more milliseconds: converted to a duration they came out negative, a budget already
  // spent, and the request failed at once with 504.
  TestUpstream upstream;
  ProxyUnderTest proxy(withPort(R"(workers: 1
listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
upstreams:
  - name: app
    url: http://127.0.0.1:{port}
    timeouts:
      request: 2s
admin:
  address: off
)",
                                upstream.port()));
  for (const char* huge : {"9223372036854775808", "18446744073709551615"}) {
    const auto r = httpRequest(proxy.port(), "GET", "/", {{"x-request-timeout-ms", huge}});
    ASSERT_TRUE(r) << huge;
    EXPECT_EQ(r->status, 200) << huge << ": " << r->body;
  }
  const auto requests = upstream.requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& request : requests) {
    const long sent = std::stol(request.header("x-request-timeout-ms"));
    EXPECT_GT(sent, 1500);
    EXPECT_LE(sent, 2000);
  }
}

TEST(Deadline, UntrustedBudgetIsIgnoredAndOffSendsNothing) {
  TestUpstream upstream;
  ProxyUnderTest proxy(withPort(R"(workers: 1
listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
  - name: quiet
    address: 127.0.0.1:0
    upstream: quiet
upstreams:
  - name: app
    url: http://127.0.0.1:{port}
    timeouts:
      request: 3s
  - name: quiet
    url: http://127.0.0.1:{port}
    timeouts:
      deadline_header: "off"
context:
  trusted_sources: [10.0.0.0/8]
admin:
  address: off
)",
                                upstream.port()));
  auto r = httpRequest(proxy.port(0), "GET", "/untrusted", {{"x-request-timeout-ms", "5"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = httpRequest(proxy.port(1), "GET", "/off", {{"x-request-timeout-ms", "5"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const auto requests = upstream.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_GT(std::stol(requests[0].header("x-request-timeout-ms")), 2500);
  // Off: the proxy neither sends a budget nor forwards the client's; the header passes through
  // as any other would (it is the client's own business then).
  EXPECT_EQ(requests[1].header("x-request-timeout-ms"), "5");
}

}  // namespace
}  // namespace viscount::test
