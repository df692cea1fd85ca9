// Graceful drain: stop accepting, turn /ready to 503, let in-flight requests finish, close idle
// keep-alive connections, then exit 0; and give up on what is left once drain_timeout passes.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
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
  // Not a reset: an answer the client may retry elsewhere, then the close.
  const auto r = c.readResponse(false, milliseconds(1000));
  ASSERT_TRUE(r) << "no answer before the close";
  expectProxyError(*r, 503, "draining");
  EXPECT_EQ(r->header("x-request-id"), "hung");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.waitClosed(milliseconds(1000)));

  auto lines = proxy.accessLog(1);
  ASSERT_EQ(lines.size(), 1u) << proxy.accessLogText();
  EXPECT_EQ(lines[0]["request_id"], "hung");
  EXPECT_EQ(lines[0]["error"], "draining") << lines[0].dump();
  EXPECT_EQ(lines[0]["status"], 503);
}

// A body that names its request, big enough to still be moving when the drain starts.
std::string loadBody(const std::string& target) {
  std::string body;
  while (body.size() < 64 * 1024)
    body += target + ";";
  return body;
}

TEST(Drain, DrainUnderLoadLosesNoInFlightRequest) {
  // 50 keep-alive clients each have a request in flight when the drain starts; the upstream
  // answers all of them (300 ms after being let go). Every one gets its whole 200, told
  // "connection: close"; a client arriving after the drain began is turned away; the server then
  // exits 0 long before drain_timeout.
  constexpr int kClients = 50;
  Gate gate;
  TestUpstream upstream([&gate](const ReceivedRequest& req) {
    gate.wait(milliseconds(10000));
    UpstreamReply r;
    r.delay = milliseconds(300);
    r.body = loadBody(req.target);
    return r;
  });
  GateOpener opener{gate};
  ProxyUnderTest proxy(singleUpstreamConfig(upstream.port(), 2,
                                            "    pool:\n      size: 64\n      max_overflow: 64\n",
                                            "drain_timeout: 10s\nlogging:\n  level: info\n"));

  struct Result {
    int status = 0;
    bool body_ok = false;
    std::string connection;
    bool closed = false;
  };
  std::vector<Result> results(kClients);
  std::vector<std::unique_ptr<RawConnection>> conns;
  for (int i = 0; i < kClients; ++i) {
    conns.push_back(std::make_unique<RawConnection>(proxy.port()));
    ASSERT_TRUE(conns.back()->send(buildRequest("GET", "/load/" + std::to_string(i),
                                                {{"x-request-id", "load-" + std::to_string(i)}})));
  }
  std::vector<std::thread> readers;
  for (int i = 0; i < kClients; ++i) {
    readers.emplace_back([&, i] {
      auto r = conns[i]->readResponse(false, std::chrono::seconds(8));
      if (!r) return;
      results[i].status = r->status;
      results[i].body_ok = r->body == loadBody("/load/" + std::to_string(i));
      results[i].connection = lower(r->header("connection"));
      results[i].closed = conns[i]->waitClosed(milliseconds(2000));
    });
  }
  const bool all_in_flight =
      eventually([&] { return upstream.requestCount() == static_cast<size_t>(kClients); });
  EXPECT_TRUE(all_in_flight) << upstream.requestCount() << " of " << kClients
                             << " reached the upstream";

  const auto drain_start = Clock::now();
  proxy.drain();
  EXPECT_TRUE(eventually([&] { return adminStatus(proxy, "GET", "/ready") == 503; }));
  std::string what;
  EXPECT_TRUE(newConnectionTurnedAway(proxy.port(), &what)) << what;
  gate.open();
  for (auto& t : readers)
    t.join();

  int lost = 0;
  for (int i = 0; i < kClients; ++i) {
    SCOPED_TRACE("client " + std::to_string(i));
    const Result& r = results[i];
    if (r.status != 200 || !r.body_ok) ++lost;
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.body_ok) << "the body was cut or mixed up";
    EXPECT_EQ(r.connection, "close") << "a keep-alive client is told the connection ends";
    EXPECT_TRUE(r.closed) << "the connection stayed open after the response";
  }
  EXPECT_EQ(lost, 0) << "in-flight requests lost to the drain";
  conns.clear();

  auto code = proxy.waitFor(milliseconds(5000));
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - drain_start);
  ASSERT_TRUE(code) << "the server did not exit after its last request";
  EXPECT_EQ(*code, 0);
  EXPECT_LT(took, milliseconds(5000)) << "the drain waited for its timeout, not its requests";

  auto lines = proxy.accessLog(kClients);
  for (int i = 0; i < kClients; ++i) {
    auto mine = linesFor(lines, "load-" + std::to_string(i));
    ASSERT_EQ(mine.size(), 1u) << "load-" << i;
    SCOPED_TRACE(mine[0].dump());
    EXPECT_EQ(mine[0]["status"], 200);
    EXPECT_TRUE(mine[0]["error"].is_null());
    EXPECT_EQ(mine[0]["bytes_out"], loadBody("/load/" + std::to_string(i)).size());
  }
  for (const auto& req : upstream.requests())
    EXPECT_NE(req.target, "/after-drain");
}

}  // namespace
}  // namespace viscount::test
