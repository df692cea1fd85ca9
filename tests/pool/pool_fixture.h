#pragma once

// The UpstreamPool tests' fixture: a real EventLoop, real loopback sockets, and connections whose
// codec is a minimal TestCodec that carries no protocol. A Waiter plays the Exchange: it opens a
// stream on the connection it gets, and the test ends streams with finishExchange().

#include <event2/event.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "pool/upstream_pool.h"
#include "proxy/net/socket.h"
#include "telemetry/metrics.h"
#include "tests/proxy/test_printers.h"

namespace viscount::pool_test {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

// A codec with no protocol on top: it carries up to `capacity` streams (1: like HTTP/1) and is
// ready as soon as the transport is. The test plays the exchange: it ends a stream with
// finishExchange().
class TestCodec final : public UpstreamCodec {
 public:
  TestCodec(UpstreamConnection& connection, int* deleted, size_t capacity)
      : UpstreamCodec(connection), deleted_(deleted), capacity_(capacity) {}
  ~TestCodec() override { ++*deleted_; }

  void start() override { connection_.ready(); }
  UpstreamStream& newStream(UpstreamStreamCallbacks&) override {
    EXPECT_GT(streamCapacity(), 0u) << "a stream beyond the connection's capacity";
    ++active_;
    return stream_;
  }
  size_t activeStreams() const override { return active_; }
  size_t streamCapacity() const override { return active_ >= capacity_ ? 0 : capacity_ - active_; }
  bool idleAndOpen() override { return connection_.socketIdleAndOpen(multiplexed()); }
  bool multiplexed() const override { return capacity_ > 1; }

  void finishExchange(bool reusable) {
    ASSERT_GT(active_, 0u);
    --active_;
    connection_.streamDone(reusable);
  }
  // As new settings or a GOAWAY do (0: no new streams).
  void setCapacity(size_t capacity) {
    capacity_ = capacity;
    connection_.capacityChanged();
  }

 private:
  // A stream the pool never drives.
  class NullStream final : public UpstreamStream {
    void sendHead(const UpstreamRequest&, bool) override {}
    void sendBody(std::string_view, bool) override {}
    void sendTrailers(HeaderList&) override {}
    void reset() override {}
    void readDisable(bool) override {}
    size_t bufferedRequestBytes() const override { return 0; }
  };

  void onData() override {
    // As an HTTP/1 connection does: bytes while idle answer nothing, so it cannot be reused.
    if (connection_.state() == UpstreamConnection::State::kIdle && !multiplexed()) {
      connection_.close();
    } else {
      in().clear();
    }
  }
  void onPeerClosed() override { connection_.close(); }
  void onSocketError(int) override { connection_.close(); }

  int* deleted_;
  size_t capacity_;
  size_t active_ = 0;
  NullStream stream_;
};

// Stream callbacks nobody calls: the pool tests never run a stream.
class NullStreamCallbacks final : public UpstreamStreamCallbacks {
  void onUpstreamInformational(ResponseHead&) override {}
  void onUpstreamHeaders(ResponseHead&, bool) override {}
  void onUpstreamBody(std::string_view, bool) override {}
  void onUpstreamTrailers(HeaderList&) override {}
  void onUpstreamReset(ErrorCode, bool) override {}
  void onUpstreamWritable() override {}
};

// A request waiting for a connection.
class Waiter : public PoolCallbacks {
 public:
  explicit Waiter(std::string name = "", std::vector<std::string>* order = nullptr)
      : name_(std::move(name)), order_(order) {}

  void onPoolReady(PooledConnection& c) override {
    ++calls;
    connection = &static_cast<UpstreamConnection&>(c);  // the pool hands out its own connections
    c.newStream(stream_callbacks_);                     // as the Exchange does
    if (order_) order_->push_back(name_);
  }
  void onPoolFailure(ErrorCode code, std::string_view why, std::string_view addr) override {
    ++calls;
    failed = true;
    error = code;
    detail = why;
    address = addr;
    if (order_) order_->push_back(name_ + " failed");
  }

  int calls = 0;
  UpstreamConnection* connection = nullptr;
  bool failed = false;
  ErrorCode error = ErrorCode::kNone;
  std::string detail;
  std::string address;

 private:
  std::string name_;
  std::vector<std::string>* order_;
  NullStreamCallbacks stream_callbacks_;
};

// A loopback listening socket standing in for the upstream; connections are accepted on demand.
class Upstream {
 public:
  explicit Upstream(int backlog = 128) {
    ResolvedAddress any;
    makeSocketAddress("127.0.0.1", 0, &any);
    std::string error;
    fd_ = openListener(any, false, backlog, &error);
    EXPECT_GE(fd_, 0) << error;
    makeSocketAddress("127.0.0.1", boundPort(fd_), &address_);
  }
  ~Upstream() {
    for (int fd : accepted_)
      ::close(fd);
    for (int fd : fillers_)
      ::close(fd);
    if (fd_ >= 0) ::close(fd_);
  }
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  const ResolvedAddress& address() const { return address_; }

  // The next connection the pool opened, or -1 after a generous wait.
  int accept() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return -1;
    const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) accepted_.push_back(fd);
    return fd;
  }

  // Connects without accepting until the kernel stops answering SYNs (the accept queue is full),
  // so that the next connect hangs. False if this kernel never stops answering.
  bool fillAcceptQueue() {
    for (int i = 0; i < 16; ++i) {
      const int fd = startConnect(address_);
      if (fd < 0) return false;
      fillers_.push_back(fd);
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 200) == 0) return true;  // this one is left hanging
    }
    return false;
  }

  // Stops listening: new connects are refused.
  void stopListening() {
    ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  ResolvedAddress address_;
  std::vector<int> accepted_;
  std::vector<int> fillers_;
};

// Waits until the kernel has delivered the peer's FIN or bytes to our end of `c`.
inline bool peerEventArrived(const UpstreamConnection& c) {
  pollfd p{c.fd(), POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 5000) == 1;
}

inline std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

class UpstreamPoolTest : public ::testing::Test {
 protected:
  UpstreamPoolTest() {
    config_.name = "app";
    config_.timeouts.connect = 5s;
    config_.pool.pre_ping = true;
    config_.pool.recycle = 1h;
    config_.pool.idle_timeout = 30s;
  }

  UpstreamPool& makePool(std::vector<ResolvedAddress> addresses) {
    MetricsShard& shard = metrics_.shard(0);
    pool_ = std::make_unique<UpstreamPool>(loop_, config_, std::move(addresses), testFactory(),
                                           connectionLimit(), 0, &shard, &shard.upstream("app"));
    return *pool_;
  }
  UpstreamPool& makePool() { return makePool({upstream_.address()}); }
  // The limit the server shares between workers; here there is one worker, this loop.
  std::shared_ptr<SharedLimit> connectionLimit() {
    return std::make_shared<SharedLimit>(std::vector<EventLoop*>{&loop_},
                                         uint64_t{config_.pool.size} + config_.pool.max_overflow);
  }

  // Codecs carrying `streams_per_connection_` streams; the connections they were made for, in
  // the order their transports came up, are in created_.
  UpstreamPool::Factory testFactory() {
    return [this](UpstreamConnection& c, UpstreamProtocol protocol) {
      protocols_.push_back(protocol);
      created_.push_back(&c);
      return std::unique_ptr<UpstreamCodec>(
          std::make_unique<TestCodec>(c, &deleted_, streams_per_connection_));
    };
  }

  // Turns the loop until `done` holds or `limit` passes, deleting what each turn deferred.
  // (EventLoop::run() stops for good, so the test makes the turns itself.)
  bool turnUntil(const std::function<bool()>& done, milliseconds limit = 5s) {
    bool expired = false;
    Timer deadline(
        loop_.timers(), [](void* arg) { *static_cast<bool*>(arg) = true; }, &expired);
    deadline.arm(limit);
    while (!done() && !expired) {
      event_base_loop(loop_.base(), EVLOOP_ONCE);
      loop_.runDeferred();
    }
    return done();
  }
  void turnFor(milliseconds d) {
    turnUntil([] { return false; }, d);
  }

  double metric(const std::string& series) {
    const auto all = samples(metrics_.renderPrometheus());
    auto it = all.find(series);
    return it == all.end() ? NAN : it->second;
  }
  double connectionsGauge(const std::string& state) {
    return metric(R"(viscount_upstream_connections{upstream="app",state=")" + state + R"("})");
  }

  static TestCodec* asTest(UpstreamConnection* c) { return static_cast<TestCodec*>(c->codec()); }

  // Declared so that the pool goes first (deferring its connections to the loop), then the loop
  // (deleting them and their codecs, which counts into deleted_), and the metrics the pool
  // reports to outlive it.
  int deleted_ = 0;  // codecs deleted: connections that got as far as their transport
  size_t streams_per_connection_ = 1;
  std::vector<UpstreamConnection*> created_;
  std::vector<UpstreamProtocol> protocols_;
  Metrics metrics_{1};
  UpstreamConfig config_;
  Upstream upstream_;
  EventLoop loop_;
  std::unique_ptr<UpstreamPool> pool_;
};

}  // namespace viscount::pool_test
