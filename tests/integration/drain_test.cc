// Graceful drain: stop accepting, turn /ready to 503, let in-flight requests finish, close idle
// keep-alive connections, then exit 0; and give up on what is left once drain_timeout passes.

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"

namespace viscount::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Holds upstream replies until the test opens it (or a safety timeout passes), so "in flight"
// lasts exactly as long as the test needs instead of a guessed delay.
class Gate {
 public:
  void wait(milliseconds limit) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, limit, [this] { return open_; });
  }
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Opens the gate when the test leaves, before the upstream joins its threads.
struct GateOpener {
  Gate& gate;
  ~GateOpener() { gate.open(); }
};

// GET on the admin port; 0 if no answer (e.g. the server has stopped).
int adminStatus(ProxyUnderTest& proxy, const std::string& method, const std::string& path) {
  try {
    auto r = httpRequest(proxy.adminPort(), method, path);
    return r ? r->status : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

// True if a new client cannot get a request proxied: connect is refused, or the connection is
// closed without an answer, or it is told 503. A connection that is accepted and then left
// hanging is not turned away.
bool newConnectionTurnedAway(uint16_t port, std::string* what) {
  std::unique_ptr<RawConnection> c;
  try {
    c = std::make_unique<RawConnection>(port);
  } catch (const std::exception&) {
    *what = "connect refused";
    return true;
  }
  if (!c->send(buildRequest("GET", "/after-drain"))) {
    *what = "send failed";
    return true;
  }
  auto r = c->readResponse(false, milliseconds(1000));
  if (r) {
    *what = "answered " + std::to_string(r->status);
    return r->status == 503;
  }
  if (c->waitClosed(milliseconds(10))) {
    *what = "closed without a response";
    return true;
  }
  *what = "connected, then neither answered nor closed for 1 s";
  return false;
}

std::string withDrainTimeout(uint16_t port, const std::string& timeout) {
  std::string yaml = defaultConfig(port);
  const std::string from = "drain_timeout: 5s";
  const size_t at = yaml.find(from);
  if (at != std::string::npos) yaml.replace(at, from.size(), "drain_timeout: " + timeout);
  return yaml;
}

TEST(Drain, InFlightRequestCompletesAndServerExitsCleanly) {
  Gate gate;
  TestUpstream upstream([&gate](const ReceivedRequest& req) {
    if (req.target == "/slow") gate.wait(milliseconds(5000));
    UpstreamReply r = TestUpstream::echoContext(req);
    if (req.target == "/slow") r.delay = milliseconds(100);  // still slow once released
    return r;
  });
  GateOpener opener{gate};
  ProxyUnderTest proxy(defaultConfig(upstream.port()));

  // A keep-alive client that has finished its request and sits idle.
  RawConnection idle(proxy.port());
  ASSERT_TRUE(idle.send(buildRequest("GET", "/fast", {{"x-request-id", "idle-client"}})));
  auto first = idle.readResponse();
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200);

  // A request in flight when the drain begins.
  RawConnection busy(proxy.port());
  ASSERT_TRUE(busy.send(buildRequest("GET", "/slow", {{"x-request-id", "in-flight"}})));
  ASSERT_TRUE(eventually([&] { return upstream.requestCount() == 2; }));

  EXPECT_EQ(adminStatus(proxy, "GET", "/ready"), 200);
  proxy.drain();
  EXPECT_TRUE(eventually([&] { return adminStatus(proxy, "GET", "/ready") == 503; }))
      << "/ready during the drain: " << adminStatus(proxy, "GET", "/ready");
  EXPECT_TRUE(idle.waitClosed(milliseconds(2000))) << "an idle keep-alive client is closed";
  std::string what;
  EXPECT_TRUE(newConnectionTurnedAway(proxy.port(), &what)) << what;

  gate.open();
  auto r = busy.readResponse(false, milliseconds(3000));
  ASSERT_TRUE(r) << "the in-flight request got no response";
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("x-request-id"), "in-flight");
  EXPECT_EQ(json::parse(r->body)["target"], "/slow");
  EXPECT_TRUE(busy.waitClosed(milliseconds(2000))) << "no keep-alive while draining";
  // Like a real client told "connection: close"; the server would otherwise linger a while
  // waiting for this side to close.
  EXPECT_EQ(r->header("connection"), "close");
  busy.close();

  auto code = proxy.waitFor(milliseconds(3000));
  ASSERT_TRUE(code) << "the server did not exit after its last request";
  EXPECT_EQ(*code, 0);

  auto lines = proxy.accessLog(2);
  bool found = false;
  for (const auto& l : lines) {
    if (l["request_id"] == "in-flight") {
      found = true;
      EXPECT_EQ(l["status"], 200) << l.dump();
      EXPECT_TRUE(l["error"].is_null()) << l.dump();
    }
  }
  EXPECT_TRUE(found) << proxy.accessLogText();
  for (const auto& req : upstream.requests())
    EXPECT_NE(req.target, "/after-drain");
}

TEST(Drain, NothingInFlightExitsQuickly) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto r = httpRequest(proxy.port(), "GET", "/before");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // An idle keep-alive connection must not hold the drain open.
  RawConnection idle(proxy.port());
  ASSERT_TRUE(idle.send(buildRequest("GET", "/idle")));
  ASSERT_TRUE(idle.readResponse());

  const auto start = Clock::now();
  proxy.drain();
  auto code = proxy.waitFor(milliseconds(1000));
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(code) << "not stopped within 1 s";
  EXPECT_EQ(*code, 0);
  EXPECT_LT(took, milliseconds(1000));
  EXPECT_TRUE(idle.waitClosed(milliseconds(1000)));
  EXPECT_EQ(proxy.accessLog(2).size(), 2u);
}

TEST(Drain, AdminDrainEndsServer) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  EXPECT_EQ(adminStatus(proxy, "POST", "/drain"), 202);
  auto code = proxy.waitFor(milliseconds(2000));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);
}

TEST(Drain, DrainTimeoutEndsHangingRequest) {
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.hang = true;
    return r;
  });
  ProxyUnderTest proxy(withDrainTimeout(upstream.port(), "1s"));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/forever", {{"x-request-id", "hung"}})));
  ASSERT_TRUE(eventually([&] { return upstream.requestCount() == 1; }));

  const auto start = Clock::now();
  proxy.drain();
  EXPECT_TRUE(eventually([&] { return adminStatus(proxy, "GET", "/ready") == 503; }));
  auto code = proxy.waitFor(milliseconds(4000));
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(code) << "not stopped within 4 s of a 1 s drain timeout";
  EXPECT_EQ(*code, 0);
  EXPECT_GE(took, milliseconds(900)) << "stopped before drain_timeout with a request in flight";
  EXPECT_LE(took, milliseconds(3000));
  EXPECT_TRUE(c.waitClosed(milliseconds(1000)));

  auto lines = proxy.accessLog(1);
  ASSERT_EQ(lines.size(), 1u) << proxy.accessLogText();
  EXPECT_EQ(lines[0]["request_id"], "hung");
  EXPECT_TRUE(lines[0]["error"].is_string()) << lines[0].dump();
  EXPECT_NE(lines[0]["status"], 200);
}

}  // namespace
}  // namespace viscount::test
