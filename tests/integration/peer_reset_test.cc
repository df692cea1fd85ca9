// A peer that resets (TCP RST) in the middle of a message. The reset often arrives together with
// the message's last bytes, or while the proxy has paused reading that peer for backpressure;
// epoll then reports it once, as EPOLLERR, which libevent passes on as a plain read+write event
// (no EV_CLOSED). The proxy must still notice it at once: otherwise a client waits for the rest
// of a response, or an exchange for the rest of a request body, until the request timeout, and
// the access log blames upstream_timeout. Found by the soak test (tests/soak).

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"
#include "tests/test_timing.h"

namespace viscount::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// A request timeout far beyond what any of these tests may take: reaching it is the failure.
// kPromptMs is the deadline for "before the timeout", stretched for sanitizer builds and still
// well short of it; it says nothing of how fast a reset is noticed.
constexpr long kRequestTimeoutMs = 20000;
constexpr long kPromptMs = slowScaled(milliseconds(3000)).count();
static_assert(kPromptMs < kRequestTimeoutMs);

std::string resetConfig(uint16_t port) {
  return singleUpstreamConfig(
      port, 1, "    timeouts: {request: " + std::to_string(kRequestTimeoutMs) + "ms}\n");
}

long msSince(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

std::string cutResponse(size_t promised, size_t sent) {
  return "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(promised) + "\r\n\r\n" +
         std::string(sent, 'r');
}

void expectPromptReset(const json& line, const std::string& error) {
  SCOPED_TRACE(line.dump());
  EXPECT_EQ(line["error"], error);
  EXPECT_LT(line["duration_ms"].get<double>(), kPromptMs) << "noticed only by a timeout";
}

TEST(PeerReset, UpstreamResetWithTheLastBytesEndsTheResponseAtOnce) {
  // Head, 100 of 1000 bytes and the reset leave the upstream back to back, so the proxy mostly
  // reads them in one go: a short read that is not the end of the story.
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.raw = cutResponse(1000, 100);
    r.close = true;
    r.reset = true;
    return r;
  });
  ProxyUnderTest proxy(resetConfig(upstream.port()));
  constexpr int kRounds = 10;
  for (int i = 0; i < kRounds; ++i) {
    RawConnection c(proxy.port());
    const auto start = Clock::now();
    ASSERT_TRUE(c.send(buildRequest("GET", "/reset-" + std::to_string(i))));
    const std::string got = c.readAll(milliseconds(kRequestTimeoutMs));
    EXPECT_LT(msSince(start), kPromptMs) << "round " << i << " waited for the request timeout";
    EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got.substr(0, 100);
  }
  auto lines = proxy.accessLog(kRounds);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kRounds));
  for (const auto& l : lines) {
    expectPromptReset(l, "upstream_reset");
    EXPECT_EQ(l["status"], 200);
  }
}

TEST(PeerReset, UpstreamResetWhileReadingIsPausedEndsTheResponseOnResume) {
  // The client does not read at first, so the proxy stops reading the upstream (backpressure)
  // and the reset lands while it is paused. When the client reads, the proxy resumes, drains
  // what the kernel holds, and must find the reset behind it.
  constexpr size_t kPromised = 8u << 20;
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.raw = cutResponse(kPromised, 1u << 20);
    r.close = true;
    r.reset = true;
    return r;
  });
  ProxyUnderTest proxy(resetConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/reset-paused")));
  ASSERT_TRUE(eventually([&] {
    return upstream.connections().size() == 1 && upstream.connections()[0].closed.has_value();
  }));
  std::this_thread::sleep_for(milliseconds(100));  // let the reset reach the proxy
  const auto start = Clock::now();
  const std::string got = c.readAll(milliseconds(kRequestTimeoutMs));
  EXPECT_LT(msSince(start), kPromptMs) << "the client waited for the request timeout";
  EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got.substr(0, 100);
  EXPECT_LT(got.size(), kPromised);

  auto lines = proxy.accessLog(1);
  ASSERT_EQ(lines.size(), 1u);
  expectPromptReset(lines[0], "upstream_reset");
}

TEST(PeerReset, ClientResetWithPartOfItsBodyIsADisconnectAtOnce) {
  // Head, a tenth of the declared body and the reset, back to back. The upstream waits for the
  // rest of the body and never answers: only the client's reset can end the exchange early.
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.hang = true;
    return r;
  });
  ProxyUnderTest proxy(resetConfig(upstream.port()));
  constexpr int kRounds = 10;
  for (int i = 0; i < kRounds; ++i) {
    RawConnection c(proxy.port());
    ASSERT_TRUE(c.send(
        buildRequest("POST", "/upload-" + std::to_string(i), {{"content-length", "1000000"}}) +
        std::string(100000, 'u')));
    resetOnClose(c.fd());
    c.close();
  }
  auto lines = proxy.accessLog(kRounds, milliseconds(kPromptMs));
  ASSERT_EQ(lines.size(), static_cast<size_t>(kRounds))
      << "exchanges still waiting for the bodies of clients that reset:\n"
      << proxy.accessLogText();
  for (const auto& l : lines) {
    expectPromptReset(l, "client_disconnected");
    EXPECT_EQ(l["status"], 0);
  }
}

}  // namespace
}  // namespace viscount::test
