// UpstreamPool with connections that carry several streams at once, as HTTP/2 has them: a stream
// on a busy connection with room comes before anything new opens, no connection carries more than
// it allows, a connection with no stream is idle, and pool.size / max_overflow count connections.

#include <map>

#include "pool/upstream_pool.h"
#include "tests/pool/pool_fixture.h"

namespace viscount::pool_test {
namespace {

class MultiplexingTest : public UpstreamPoolTest {
 protected:
  MultiplexingTest() {
    config_.url.scheme = UpstreamScheme::kH2c;
    streams_per_connection_ = 3;
  }

  std::vector<std::unique_ptr<Waiter>> acquireMany(UpstreamPool& pool, int n) {
    std::vector<std::unique_ptr<Waiter>> waiters;
    for (int i = 0; i < n; ++i) {
      waiters.push_back(std::make_unique<Waiter>());
      pool.acquire(*waiters.back());
    }
    return waiters;
  }
  static bool allServed(const std::vector<std::unique_ptr<Waiter>>& waiters) {
    for (const auto& w : waiters) {
      if (w->calls == 0) return false;
    }
    return true;
  }
  static std::map<UpstreamConnection*, int> streamsPerConnection(
      const std::vector<std::unique_ptr<Waiter>>& waiters) {
    std::map<UpstreamConnection*, int> out;
    for (const auto& w : waiters)
      ++out[w->connection];
    return out;
  }
};

TEST_F(MultiplexingTest, OneConnectCarriesWaitersUpToItsCapacity) {
  UpstreamPool& pool = makePool();
  auto waiters = acquireMany(pool, 3);
  EXPECT_EQ(pool.connectionsOpened(), 1u) << "an HTTP/2 connect is expected to carry them all";
  ASSERT_TRUE(turnUntil([&] { return allServed(waiters); }));
  const auto per = streamsPerConnection(waiters);
  ASSERT_EQ(per.size(), 1u);
  EXPECT_EQ(per.begin()->second, 3);
  EXPECT_EQ(protocols_, std::vector<UpstreamProtocol>{UpstreamProtocol::kHttp2});
  EXPECT_EQ(pool.busyCount(), 1u);
  EXPECT_EQ(pool.sharingCount(), 0u) << "full: no room for a fourth stream";
  EXPECT_EQ(connectionsGauge("active"), 1) << "the gauge counts connections, not streams";
}

TEST_F(MultiplexingTest, WaitersBeyondTheCapacityGetConnectionsOfTheirOwn) {
  UpstreamPool& pool = makePool();
  auto waiters = acquireMany(pool, 7);
  ASSERT_TRUE(turnUntil([&] { return allServed(waiters); }));
  for (const auto& w : waiters)
    EXPECT_FALSE(w->failed) << w->detail;
  const auto per = streamsPerConnection(waiters);
  EXPECT_EQ(per.size(), 3u);  // 3 + 3 + 1
  for (const auto& [connection, streams] : per)
    EXPECT_LE(streams, 3);
  EXPECT_EQ(pool.connectionsOpened(), 3u) << "the first connection's limit told how many more";
  EXPECT_EQ(connectionsGauge("active"), 3);
}

TEST_F(MultiplexingTest, ABusyConnectionWithRoomIsSharedBeforeAnythingOpens) {
  UpstreamPool& pool = makePool();
  Waiter w1;
  pool.acquire(w1);
  ASSERT_TRUE(turnUntil([&] { return w1.calls > 0; }));
  EXPECT_EQ(pool.sharingCount(), 1u);
  Waiter w2;
  pool.acquire(w2);
  EXPECT_EQ(w2.calls, 1) << "served at once, without a connect";
  EXPECT_EQ(w2.connection, w1.connection);
  EXPECT_EQ(pool.connectionsOpened(), 1u);
  EXPECT_EQ(w1.connection->activeStreams(), 2u);
  EXPECT_EQ(metric(R"(viscount_upstream_connections_reused_total{upstream="app"})"), 1);
}

TEST_F(MultiplexingTest, AStreamThatEndsGoesToTheOldestWaiter) {
  config_.pool.size = 1;
  config_.pool.max_overflow = 0;
  UpstreamPool& pool = makePool();
  auto first = acquireMany(pool, 3);
  ASSERT_TRUE(turnUntil([&] { return allServed(first); }));
  std::vector<std::string> order;
  Waiter late("late", &order), later("later", &order);
  pool.acquire(late);
  pool.acquire(later);
  turnFor(20ms);
  EXPECT_EQ(late.calls, 0) << "the only connection allowed is full";
  EXPECT_EQ(pool.connectionsOpened(), 1u);
  asTest(first[0]->connection)->finishExchange(true);
  EXPECT_EQ(late.connection, first[0]->connection);
  EXPECT_EQ(later.calls, 0);
  asTest(first[1]->connection)->finishExchange(true);
  EXPECT_EQ(order, (std::vector<std::string>{"late", "later"}));
}

TEST_F(MultiplexingTest, MoreRoomFromNewSettingsServesWaiters) {
  config_.pool.size = 1;
  config_.pool.max_overflow = 0;
  streams_per_connection_ = 1;
  UpstreamPool& pool = makePool();
  Waiter w1, w2;
  pool.acquire(w1);
  pool.acquire(w2);
  ASSERT_TRUE(turnUntil([&] { return w1.calls > 0; }));
  turnFor(20ms);
  EXPECT_EQ(w2.calls, 0);
  asTest(w1.connection)->setCapacity(2);  // the peer's SETTINGS_MAX_CONCURRENT_STREAMS grew
  EXPECT_EQ(w2.connection, w1.connection);
}

TEST_F(MultiplexingTest, AConnectionWithoutStreamsIsIdleAndTimesOut) {
  config_.pool.idle_timeout = 50ms;
  UpstreamPool& pool = makePool();
  auto waiters = acquireMany(pool, 2);
  ASSERT_TRUE(turnUntil([&] { return allServed(waiters); }));
  UpstreamConnection* c = waiters[0]->connection;
  asTest(c)->finishExchange(true);
  EXPECT_EQ(c->state(), UpstreamConnection::State::kBusy) << "one stream still open";
  asTest(c)->finishExchange(true);
  EXPECT_EQ(c->state(), UpstreamConnection::State::kIdle);
  EXPECT_EQ(connectionsGauge("idle"), 1);
  EXPECT_EQ(connectionsGauge("active"), 0);
  ASSERT_TRUE(turnUntil([&] { return pool.idleCount() == 0; }));
  EXPECT_EQ(deleted_, 1);
}

TEST_F(MultiplexingTest, AfterGoawayNoNewStreamsAndItClosesWithItsLastStream) {
  UpstreamPool& pool = makePool();
  auto waiters = acquireMany(pool, 2);
  ASSERT_TRUE(turnUntil([&] { return allServed(waiters); }));
  UpstreamConnection* old = waiters[0]->connection;
  asTest(old)->setCapacity(0);  // GOAWAY: the streams it has go on, no new ones
  EXPECT_EQ(pool.sharingCount(), 0u);
  Waiter w3;
  pool.acquire(w3);
  ASSERT_TRUE(turnUntil([&] { return w3.calls > 0; }));
  EXPECT_NE(w3.connection, old);
  EXPECT_EQ(pool.connectionsOpened(), 2u);
  asTest(old)->finishExchange(false);
  EXPECT_TRUE(old->open()) << "its other stream is still running";
  asTest(old)->finishExchange(false);
  loop_.runDeferred();
  EXPECT_EQ(deleted_, 1);
  EXPECT_EQ(connectionsGauge("active"), 1);
}

TEST_F(MultiplexingTest, ARecycledConnectionTakesNoNewStreams) {
  config_.pool.recycle = 50ms;
  UpstreamPool& pool = makePool();
  Waiter w1;
  pool.acquire(w1);
  ASSERT_TRUE(turnUntil([&] { return w1.calls > 0; }));
  turnFor(80ms);
  Waiter w2;
  pool.acquire(w2);
  ASSERT_TRUE(turnUntil([&] { return w2.calls > 0; }));
  EXPECT_NE(w2.connection, w1.connection) << "too old for another stream";
  asTest(w1.connection)->finishExchange(true);
  loop_.runDeferred();
  EXPECT_EQ(deleted_, 1) << "closed with its last stream";
}

TEST_F(MultiplexingTest, AnOverflowConnectionLingersThenClosesWhenItsStreamsEnd) {
  config_.pool.size = 1;
  config_.pool.max_overflow = 1;
  streams_per_connection_ = 1;
  UpstreamPool& pool = makePool();
  auto waiters = acquireMany(pool, 2);
  ASSERT_TRUE(turnUntil([&] { return allServed(waiters); }));
  ASSERT_NE(waiters[0]->connection, waiters[1]->connection);
  asTest(waiters[0]->connection)->finishExchange(true);
  asTest(waiters[1]->connection)->finishExchange(true);
  loop_.runDeferred();
  EXPECT_EQ(pool.idleCount(), 2u) << "the one beyond pool.size lingers for the next request";
  EXPECT_EQ(deleted_, 0);
  EXPECT_TRUE(turnUntil([&] { return deleted_ == 1; }, 3s)) << "and closes after the linger";
  EXPECT_EQ(pool.idleCount(), 1u) << "pool.size idle connections are kept";
  turnFor(100ms);
  EXPECT_EQ(deleted_, 1);
}

TEST_F(MultiplexingTest, TheNextBurstTakesALingeringConnection) {
  config_.pool.size = 1;
  config_.pool.max_overflow = 1;
  streams_per_connection_ = 1;
  UpstreamPool& pool = makePool();
  auto first = acquireMany(pool, 2);
  ASSERT_TRUE(turnUntil([&] { return allServed(first); }));
  asTest(first[0]->connection)->finishExchange(true);
  asTest(first[1]->connection)->finishExchange(true);
  loop_.runDeferred();
  ASSERT_EQ(pool.idleCount(), 2u);
  auto second = acquireMany(pool, 2);
  ASSERT_TRUE(turnUntil([&] { return allServed(second); }));
  EXPECT_EQ(pool.connectionsOpened(), 2u) << "both came from idle: nothing was closed and opened";
  // One of them comes back alone: it is among the `size` kept and stays past the linger.
  asTest(second[0]->connection)->finishExchange(true);
  loop_.runDeferred();
  turnFor(1500ms);
  EXPECT_EQ(pool.idleCount(), 1u);
  EXPECT_EQ(deleted_, 0);
  asTest(second[1]->connection)->finishExchange(true);
}

TEST_F(MultiplexingTest, HttpsChoosesTheCodecByAlpn) {
  config_.url.scheme = UpstreamScheme::kHttps;
  UpstreamPool& pool = makePool();
  EXPECT_EQ(pool.protocolFor("h2"), UpstreamProtocol::kHttp2);
  EXPECT_EQ(pool.protocolFor("http/1.1"), UpstreamProtocol::kHttp1);
  EXPECT_EQ(pool.protocolFor(""), UpstreamProtocol::kHttp1) << "no ALPN: HTTP/1.1";
  config_.url.scheme = UpstreamScheme::kHttp;
  EXPECT_EQ(makePool().protocolFor("h2"), UpstreamProtocol::kHttp1);
}

}  // namespace
}  // namespace viscount::pool_test
