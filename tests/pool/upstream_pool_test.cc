// UpstreamPool on a real EventLoop against real loopback sockets, with connections of one stream
// at a time (as HTTP/1 has them); the fixture is in pool_fixture.h. One test uses the real HTTP/1
// codec to check that an idle connection notices its peer closing.

#include "pool/upstream_pool.h"

#include <set>

#include "proxy/http1/http1_client.h"
#include "tests/pool/pool_fixture.h"

namespace viscount::pool_test {
namespace {

// ---- acquiring and reusing ---------------------------------------------------------------------

TEST_F(UpstreamPoolTest, AcquireOnAnEmptyPoolConnects) {
  UpstreamPool& pool = makePool();
  Waiter w;
  pool.acquire(w);
  EXPECT_EQ(w.calls, 0) << "a new connection is not ready before its connect completes";
  EXPECT_EQ(pool.connectingCount(), 1u);
  EXPECT_EQ(pool.waitingCount(), 1u);
  EXPECT_EQ(pool.connectionsOpened(), 1u);
  EXPECT_EQ(connectionsGauge("connecting"), 1);

  ASSERT_TRUE(turnUntil([&] { return w.calls > 0; }));
  EXPECT_EQ(w.calls, 1);
  ASSERT_FALSE(w.failed) << w.detail;
  ASSERT_EQ(created_.size(), 1u);
  EXPECT_EQ(w.connection, created_[0]);
  EXPECT_EQ(w.connection->state(), UpstreamConnection::State::kBusy);
  EXPECT_TRUE(w.connection->open());
  EXPECT_EQ(w.connection->addressText(), upstream_.address().text());
  EXPECT_EQ(pool.busyCount(), 1u);
  EXPECT_EQ(pool.idleCount(), 0u);
  EXPECT_EQ(pool.connectingCount(), 0u);
  EXPECT_EQ(pool.waitingCount(), 0u);
  EXPECT_EQ(connectionsGauge("active"), 1);
  EXPECT_EQ(connectionsGauge("connecting"), 0);
  EXPECT_GE(upstream_.accept(), 0) << "the upstream saw the connection";
}

TEST_F(UpstreamPoolTest, ReleasedConnectionsAreReusedMostRecentFirst) {
  UpstreamPool& pool = makePool();
  Waiter w1, w2;
  pool.acquire(w1);
  pool.acquire(w2);
  EXPECT_EQ(pool.connectingCount(), 2u) << "one connect per waiter";
  ASSERT_TRUE(turnUntil([&] { return w1.calls && w2.calls; }));
  ASSERT_TRUE(w1.connection && w2.connection);
  UpstreamConnection* c1 = w1.connection;
  UpstreamConnection* c2 = w2.connection;
  ASSERT_NE(c1, c2);

  asTest(c1)->finishExchange(true);
  asTest(c2)->finishExchange(true);
  EXPECT_EQ(pool.idleCount(), 2u);
  EXPECT_EQ(pool.busyCount(), 0u);
  EXPECT_EQ(c2->state(), UpstreamConnection::State::kIdle);
  EXPECT_EQ(connectionsGauge("idle"), 2);

  Waiter w3, w4;
  pool.acquire(w3);
  EXPECT_EQ(w3.connection, c2) << "the most recently released connection first";
  pool.acquire(w4);
  EXPECT_EQ(w4.connection, c1);
  EXPECT_EQ(pool.connectionsOpened(), 2u);
  EXPECT_EQ(pool.busyCount(), 2u);
  EXPECT_EQ(c2->requestsServed(), 1u);
  EXPECT_EQ(metric(R"(viscount_upstream_connections_reused_total{upstream="app"})"), 2);
  EXPECT_EQ(connectionsGauge("idle"), 0);
  EXPECT_EQ(connectionsGauge("active"), 2);
}

TEST_F(UpstreamPoolTest, ReleasedConnectionGoesToTheOldestWaiter) {
  UpstreamPool& pool = makePool();
  std::vector<std::string> order;
  Waiter w1("w1", &order), w2("w2", &order), w3("w3", &order);
  pool.acquire(w1);
  ASSERT_TRUE(turnUntil([&] { return w1.calls > 0; }));
  UpstreamConnection* c1 = w1.connection;
  ASSERT_NE(c1, nullptr);
  pool.acquire(w2);
  pool.acquire(w3);
  asTest(c1)->finishExchange(true);  // before either new connect completed
  EXPECT_EQ(w2.connection, c1);
  EXPECT_EQ(w3.calls, 0);
  ASSERT_TRUE(turnUntil([&] { return w3.calls > 0 && pool.connectingCount() == 0; }));
  EXPECT_EQ(order, (std::vector<std::string>{"w1", "w2", "w3"}));
  EXPECT_EQ(pool.idleCount(), 1u) << "the spare new connection is kept idle";
  EXPECT_EQ(pool.busyCount(), 2u);
}

TEST_F(UpstreamPoolTest, WaitersAreServedInArrivalOrder) {
  UpstreamPool& pool = makePool();
  std::vector<std::string> order;
  std::vector<std::unique_ptr<Waiter>> waiters;
  for (int i = 0; i < 5; ++i) {
    waiters.push_back(std::make_unique<Waiter>("w" + std::to_string(i), &order));
    pool.acquire(*waiters.back());
  }
  ASSERT_TRUE(turnUntil([&] { return order.size() == 5; }));
  EXPECT_EQ(order, (std::vector<std::string>{"w0", "w1", "w2", "w3", "w4"}));
  for (const auto& w : waiters)
    EXPECT_EQ(w->calls, 1);
}

TEST_F(UpstreamPoolTest, UnreusableConnectionIsClosed) {
  UpstreamPool& pool = makePool();
  Waiter w1;
  pool.acquire(w1);
  ASSERT_TRUE(turnUntil([&] { return w1.calls > 0; }));
  ASSERT_NE(w1.connection, nullptr);
  asTest(w1.connection)->finishExchange(false);
  EXPECT_EQ(pool.idleCount(), 0u);
  EXPECT_EQ(pool.busyCount(), 0u);
  loop_.runDeferred();
  EXPECT_EQ(deleted_, 1);

  Waiter w2;
  pool.acquire(w2);
  EXPECT_EQ(pool.connectionsOpened(), 2u);
  ASSERT_TRUE(turnUntil([&] { return w2.calls > 0; }));
  EXPECT_EQ(w2.connection, created_.at(1));
}

TEST_F(UpstreamPoolTest, ConnectionClosedDuringItsExchangeIsNotReused) {
  UpstreamPool& pool = makePool();
  Waiter w1;
  pool.acquire(w1);
  ASSERT_TRUE(turnUntil([&] { return w1.calls > 0; }));
  ASSERT_NE(w1.connection, nullptr);
  w1.connection->close();
  EXPECT_EQ(pool.busyCount(), 0u);
  loop_.runDeferred();
  EXPECT_EQ(deleted_, 1);
  EXPECT_EQ(connectionsGauge("active"), 0);
}

// ---- liveness of idle connections --------------------------------------------------------------

TEST_F(UpstreamPoolTest, PrePingSkipsAConnectionThePeerClosed) {
  UpstreamPool& pool = makePool();
  Waiter w1;
  pool.acquire(w1);
  ASSERT_TRUE(turnUntil([&] { return w1.calls > 0; }));
  UpstreamConnection* stale = w1.connection;
  ASSERT_NE(stale, nullptr);
  const int server_side = upstream_.accept();
  ASSERT_GE(server_side, 0);
  asTest(stale)->finishExchange(true);
  ASSERT_EQ(pool.idleCount(), 1u);

  // The upstream closes the idle connection; the loop has not run since, so only the check at
  // hand-out time can notice.
  ::shutdown(server_side, SHUT_RDWR);
  ASSERT_TRUE(peerEventArrived(*stale));

  Waiter w2;
  pool.acquire(w2);
  EXPECT_EQ(w2.calls, 0) << "the closed connection was handed out";
  EXPECT_EQ(pool.idleCount(), 0u);
  EXPECT_EQ(pool.connectingCount(), 1u);
  loop_.runDeferred();
  EXPECT_EQ(deleted_, 1) << "the closed connection was closed on our side too";
  ASSERT_TRUE(turnUntil([&] { return w2.calls > 0; }));
  EXPECT_EQ(w2.connection, created_.at(1));
  EXPECT_EQ(pool.connectionsOpened(), 2u);
}

TEST_F(UpstreamPoolTest, PrePingSkipsAConnectionWithUnexpectedBytes) {
  UpstreamPool& pool = makePool();
  Waiter w1;
  pool.acquire(w1);
  ASSERT_TRUE(turnUntil([&] { return w1.calls > 0; }));
  UpstreamConnection* stale = w1.connection;
  ASSERT_NE(stale, nullptr);
  const int server_side = upstream_.accept();
  ASSERT_GE(server_side, 0);
  asTest(stale)->finishExchange(true);
  ASSERT_EQ(::send(server_side, "x", 1, MSG_NOSIGNAL), 1);
  ASSERT_TRUE(peerEventArrived(*stale));

  Waiter w2;
  pool.acquire(w2);
  EXPECT_EQ(w2.calls, 0);
  EXPECT_EQ(pool.idleCount(), 0u);
  ASSERT_TRUE(turnUntil([&] { return w2.calls > 0; }));
  EXPECT_EQ(w2.connection, created_.at(1));
}

TEST_F(UpstreamPoolTest, WithoutPrePingAClosedIdleConnectionIsHandedOut) {
  // pre_ping off trades the check for a syscall saved; the exchange then sees the close.
  config_.pool.pre_ping = false;
  UpstreamPool& pool = makePool();
  Waiter w1;
  pool.acquire(w1);
  ASSERT_TRUE(turnUntil([&] { return w1.calls > 0; }));
  UpstreamConnection* c = w1.connection;
  const int server_side = upstream_.accept();
  ASSERT_GE(server_side, 0);
  asTest(c)->finishExchange(true);
  ::shutdown(server_side, SHUT_RDWR);
  ASSERT_TRUE(peerEventArrived(*c));
  Waiter w2;
  pool.acquire(w2);
  EXPECT_EQ(w2.connection, c);
}

TEST_F(UpstreamPoolTest, IdleConnectionNoticesThePeerClosingWhileTheLoopRuns) {
  // The real HTTP/1 connection: a close on an idle connection removes it from the pool at once.
  config_.pool.pre_ping = false;
  MetricsShard& shard = metrics_.shard(0);
  UpstreamPool::Factory http1 = [](UpstreamConnection& c, UpstreamProtocol) {
    return std::unique_ptr<UpstreamCodec>(std::make_unique<Http1ClientCodec>(c));
  };
  pool_ = std::make_unique<UpstreamPool>(loop_, config_, std::vector{upstream_.address()},
                                         std::move(http1), connectionLimit(), 0, &shard,
                                         &shard.upstream("app"));
  Waiter w;
  pool_->acquire(w);
  pool_->cancel(w);  // nobody waits: the connection goes idle once connected
  ASSERT_TRUE(turnUntil([&] { return pool_->idleCount() == 1; }));
  EXPECT_EQ(w.calls, 0);
  const int server_side = upstream_.accept();
  ASSERT_GE(server_side, 0);
  ::close(server_side);
  ASSERT_TRUE(turnUntil([&] { return pool_->idleCount() == 0; }));
  EXPECT_EQ(connectionsGauge("idle"), 0);
}

// ---- connect failures --------------------------------------------------------------------------

TEST_F(UpstreamPoolTest, ConnectionRefused) {
  upstream_.stopListening();
  UpstreamPool& pool = makePool();
  Waiter w;
  pool.acquire(w);
  ASSERT_TRUE(turnUntil([&] { return w.calls > 0; }));
  EXPECT_EQ(w.calls, 1);
  EXPECT_TRUE(w.failed);
  EXPECT_EQ(w.error, ErrorCode::kUpstreamConnectFailed);
  EXPECT_FALSE(w.detail.empty());
  EXPECT_EQ(w.address, upstream_.address().text());
  EXPECT_EQ(pool.connectingCount(), 0u);
  EXPECT_EQ(pool.waitingCount(), 0u);
  EXPECT_EQ(pool.idleCount() + pool.busyCount(), 0u);
  loop_.runDeferred();
  EXPECT_TRUE(created_.empty()) << "no codec for a connection that never connected";
  EXPECT_EQ(metric(R"(viscount_upstream_connect_failures_total{upstream="app"})"), 1);
  EXPECT_EQ(connectionsGauge("connecting"), 0);
}

TEST_F(UpstreamPoolTest, EachConnectFailureGoesToTheOldestWaiter) {
  upstream_.stopListening();
  UpstreamPool& pool = makePool();
  std::vector<std::string> order;
  Waiter w1("w1", &order), w2("w2", &order), w3("w3", &order);
  pool.acquire(w1);
  pool.acquire(w2);
  pool.acquire(w3);
  ASSERT_TRUE(turnUntil([&] { return order.size() == 3; }));
  EXPECT_EQ(order, (std::vector<std::string>{"w1 failed", "w2 failed", "w3 failed"}));
  EXPECT_EQ(w1.calls + w2.calls + w3.calls, 3);
}

TEST_F(UpstreamPoolTest, ConnectTimeoutWhenTheUpstreamDoesNotAnswer) {
  // The same on loopback, wherever it runs: a listener whose accept queue is full drops SYNs.
  config_.timeouts.connect = 50ms;
  Upstream silent(/*backlog=*/0);
  if (!silent.fillAcceptQueue()) GTEST_SKIP() << "this kernel answers every SYN";
  UpstreamPool& pool = makePool({silent.address()});
  Waiter w;
  const auto start = Clock::now();
  pool.acquire(w);
  ASSERT_TRUE(turnUntil([&] { return w.calls > 0; }));
  EXPECT_TRUE(w.failed);
  EXPECT_EQ(w.error, ErrorCode::kUpstreamConnectTimeout);
  EXPECT_EQ(w.detail, "connect timed out");
  EXPECT_EQ(w.address, silent.address().text());
  EXPECT_GE(Clock::now() - start, 50ms);
  EXPECT_EQ(pool.connectingCount(), 0u);
  EXPECT_EQ(pool.waitingCount(), 0u);
  EXPECT_TRUE(created_.empty());
  EXPECT_EQ(metric(R"(viscount_upstream_connect_failures_total{upstream="app"})"), 1);
  EXPECT_EQ(connectionsGauge("connecting"), 0);
}

TEST_F(UpstreamPoolTest, UpstreamWithoutAddressesFailsAtOnce) {
  UpstreamPool& pool = makePool(std::vector<ResolvedAddress>{});
  Waiter w;
  pool.acquire(w);
  EXPECT_EQ(w.calls, 1);
  EXPECT_EQ(w.error, ErrorCode::kUpstreamConnectFailed);
  EXPECT_EQ(w.detail, "upstream has no address");
  EXPECT_EQ(w.address, "");
  EXPECT_EQ(pool.waitingCount(), 0u);
  EXPECT_EQ(pool.connectionsOpened(), 0u);
}

TEST_F(UpstreamPoolTest, AddressesAreUsedInTurn) {
  Upstream second;
  UpstreamPool& pool = makePool({upstream_.address(), second.address()});
  Waiter w1, w2, w3;
  pool.acquire(w1);
  pool.acquire(w2);
  pool.acquire(w3);
  EXPECT_EQ(pool.connectionsOpened(), 3u);
  ASSERT_TRUE(turnUntil([&] { return w1.calls && w2.calls && w3.calls; }));
  EXPECT_FALSE(w1.failed || w2.failed || w3.failed);
  // Connects complete in any order; the first and third went to the first address.
  std::multiset<std::string> used;
  for (const Waiter* w : {&w1, &w2, &w3})
    used.insert(w->connection->addressText());
  EXPECT_EQ(used,
            (std::multiset<std::string>{upstream_.address().text(), upstream_.address().text(),
                                        second.address().text()}));
}

// ---- cancelling --------------------------------------------------------------------------------

TEST_F(UpstreamPoolTest, CancelledWaiterIsNeverCalledBack) {
  UpstreamPool& pool = makePool();
  Waiter w;
  pool.acquire(w);
  pool.cancel(w);
  EXPECT_EQ(pool.waitingCount(), 0u);
  EXPECT_EQ(pool.connectingCount(), 1u) << "the connect goes on and will be kept";
  ASSERT_TRUE(turnUntil([&] { return pool.idleCount() == 1; }));
  EXPECT_EQ(w.calls, 0);
  pool.cancel(w);  // cancelling again is harmless
}

TEST_F(UpstreamPoolTest, CancellingOneWaiterServesTheNext) {
  UpstreamPool& pool = makePool();
  Waiter w1, w2;
  pool.acquire(w1);
  pool.acquire(w2);
  pool.cancel(w1);
  ASSERT_TRUE(turnUntil([&] { return w2.calls > 0 && pool.connectingCount() == 0; }));
  EXPECT_EQ(w1.calls, 0);
  EXPECT_EQ(w2.calls, 1);
  EXPECT_EQ(pool.busyCount(), 1u);
  EXPECT_EQ(pool.idleCount(), 1u);
}

TEST_F(UpstreamPoolTest, CancelledWaiterDoesNotGetAConnectFailure) {
  upstream_.stopListening();
  UpstreamPool& pool = makePool();
  Waiter w;
  pool.acquire(w);
  pool.cancel(w);
  ASSERT_TRUE(turnUntil([&] { return pool.connectingCount() == 0; }));
  EXPECT_EQ(w.calls, 0);
}

// ---- idle timeout, recycle, shutdown -----------------------------------------------------------

TEST_F(UpstreamPoolTest, IdleTimeoutClosesIdleConnections) {
  config_.pool.idle_timeout = 50ms;
  UpstreamPool& pool = makePool();
  Waiter w;
  pool.acquire(w);
  ASSERT_TRUE(turnUntil([&] { return w.calls > 0; }));
  ASSERT_NE(w.connection, nullptr);
  asTest(w.connection)->finishExchange(true);
  ASSERT_EQ(pool.idleCount(), 1u);
  const auto idle_since = Clock::now();
  ASSERT_TRUE(turnUntil([&] { return pool.idleCount() == 0; }));
  EXPECT_GE(Clock::now() - idle_since, 50ms);
  EXPECT_EQ(deleted_, 1);
  EXPECT_EQ(connectionsGauge("idle"), 0);
}

TEST_F(UpstreamPoolTest, IdleTimeoutDoesNotTouchBusyConnections) {
  config_.pool.idle_timeout = 30ms;
  UpstreamPool& pool = makePool();
  Waiter w1;
  pool.acquire(w1);
  ASSERT_TRUE(turnUntil([&] { return w1.calls > 0; }));
  UpstreamConnection* c = w1.connection;
  asTest(c)->finishExchange(true);  // idle: its timer starts
  Waiter w2;
  pool.acquire(w2);  // busy again before the timer fires
  ASSERT_EQ(w2.connection, c);
  turnFor(150ms);
  EXPECT_EQ(deleted_, 0);
  EXPECT_EQ(c->state(), UpstreamConnection::State::kBusy);
  EXPECT_TRUE(c->open());
}

TEST_F(UpstreamPoolTest, ConnectTimerDoesNotCloseAConnectedConnection) {
  config_.timeouts.connect = 100ms;
  UpstreamPool& pool = makePool();
  Waiter w;
  pool.acquire(w);
  ASSERT_TRUE(turnUntil([&] { return w.calls > 0; }));
  ASSERT_FALSE(w.failed) << w.detail;
  turnFor(300ms);
  EXPECT_EQ(deleted_, 0);
  EXPECT_EQ(pool.busyCount(), 1u);
}

TEST_F(UpstreamPoolTest, RecycleRetiresAnOldConnectionWhenItIsReleased) {
  config_.pool.recycle = 50ms;
  UpstreamPool& pool = makePool();
  Waiter w;
  pool.acquire(w);
  ASSERT_TRUE(turnUntil([&] { return w.calls > 0; }));
  ASSERT_NE(w.connection, nullptr);
  turnFor(100ms);
  asTest(w.connection)->finishExchange(true);
  EXPECT_EQ(pool.idleCount(), 0u) << "too old to keep";
  loop_.runDeferred();
  EXPECT_EQ(deleted_, 1);
}

TEST_F(UpstreamPoolTest, RecycleRetiresAnIdleConnectionThatAged) {
  config_.pool.recycle = 300ms;
  UpstreamPool& pool = makePool();
  Waiter w1;
  pool.acquire(w1);
  ASSERT_TRUE(turnUntil([&] { return w1.calls > 0; }));
  asTest(w1.connection)->finishExchange(true);
  ASSERT_EQ(pool.idleCount(), 1u) << "young enough to keep (connected well under 300ms ago)";
  turnFor(350ms);
  Waiter w2;
  pool.acquire(w2);
  EXPECT_EQ(w2.calls, 0) << "the aged connection was handed out";
  EXPECT_EQ(pool.idleCount(), 0u);
  ASSERT_TRUE(turnUntil([&] { return w2.calls > 0; }));
  EXPECT_EQ(w2.connection, created_.at(1));
  EXPECT_EQ(deleted_, 1);
}

TEST_F(UpstreamPoolTest, CloseIdleLeavesBusyConnections) {
  UpstreamPool& pool = makePool();
  Waiter w1, w2;
  pool.acquire(w1);
  pool.acquire(w2);
  ASSERT_TRUE(turnUntil([&] { return w1.calls && w2.calls; }));
  asTest(w1.connection)->finishExchange(true);
  pool.closeIdle();
  EXPECT_EQ(pool.idleCount(), 0u);
  EXPECT_EQ(pool.busyCount(), 1u);
  loop_.runDeferred();
  EXPECT_EQ(deleted_, 1);
  EXPECT_TRUE(w2.connection->open());
}

TEST_F(UpstreamPoolTest, DestroyingThePoolClosesEveryConnection) {
  UpstreamPool& pool = makePool();
  Waiter busy, idle;
  pool.acquire(busy);
  pool.acquire(idle);
  ASSERT_TRUE(turnUntil([&] { return busy.calls && idle.calls; }));
  Waiter gave_up;
  pool.acquire(gave_up);  // no idle connection yet: starts a connect
  pool.cancel(gave_up);
  asTest(idle.connection)->finishExchange(true);
  ASSERT_EQ(pool.busyCount(), 1u);
  ASSERT_EQ(pool.idleCount(), 1u);
  ASSERT_EQ(pool.connectingCount(), 1u);
  pool_.reset();
  loop_.runDeferred();
  EXPECT_EQ(deleted_, 2) << "the two connected ones (the third had no codec yet)";
  EXPECT_EQ(connectionsGauge("idle"), 0);
  EXPECT_EQ(connectionsGauge("active"), 0);
  EXPECT_EQ(connectionsGauge("connecting"), 0);
  turnFor(50ms);  // nothing of the pool may still be registered with the loop
}

TEST_F(UpstreamPoolTest, DestroyingThePoolForgetsItsWaiters) {
  UpstreamPool& pool = makePool();
  Waiter queued;
  pool.acquire(queued);
  ASSERT_EQ(pool.waitingCount(), 1u);
  pool_.reset();
  turnFor(100ms);
  EXPECT_EQ(queued.calls, 0);
  EXPECT_EQ(connectionsGauge("connecting"), 0);
}

}  // namespace
}  // namespace viscount::pool_test
