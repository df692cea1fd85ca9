// The request lifecycle on its own: whole requests driven through an Exchange with no worker and
// no socket. The Exchange gets real services (loop, ids, request buffers, log and metric shards)
// and a real admission limiter; its downstream, its pool and its upstream stream are fakes the
// test plays. Each test checks that complete() ran exactly once (one onExchangeComplete, one
// access-log line) and with the outcome the path should give.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "config/config_loader.h"
#include "filters/id_generator.h"
#include "proxy/lifecycle/exchange.h"
#include "proxy/lifecycle/request_buffers.h"
#include "proxy/net/event_loop.h"
#include "telemetry/access_log.h"
#include "telemetry/event_log.h"
#include "telemetry/metrics.h"

namespace viscount {
namespace {

// The client side: records what the Exchange sends and how often it said it was complete.
class FakeDownstream final : public DownstreamStream {
 public:
  void onExchangeComplete() override { ++completions; }
  void sendContinue() override { ++continues; }
  void sendInformational(ResponseHead&) override {}
  void sendResponseHead(ResponseHead& head, bool end_stream) override {
    status = head.status;
    for (const HeaderField& f : head.headers.fields()) {
      if (!f.removed) headers.emplace_back(std::string(f.name), std::string(f.value));
    }
    ended = end_stream;
  }
  void sendResponseBody(std::string_view data, bool end_stream) override {
    body.append(data);
    ended = end_stream;
  }
  void sendResponseTrailers(HeaderList&) override { ended = true; }
  void resetStream(ErrorCode reason) override { reset = reason; }
  void readDisable(bool) override {}
  size_t bufferedResponseBytes() const override { return 0; }
  bool isHeadRequest() const override { return false; }

  std::string header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return {};
  }

  int completions = 0;
  int continues = 0;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool ended = false;
  ErrorCode reset = ErrorCode::kNone;
};

// The upstream side of one attempt.
class FakeUpstreamStream final : public UpstreamStream {
 public:
  void sendHead(const UpstreamRequest&, bool end_stream) override {
    ++heads;
    request_ended = end_stream;
  }
  void sendBody(std::string_view data, bool end_stream) override {
    body.append(data);
    request_ended = end_stream;
  }
  void sendTrailers(HeaderList&) override { request_ended = true; }
  void reset() override { ++resets; }
  void readDisable(bool) override {}
  size_t bufferedRequestBytes() const override { return 0; }

  int heads = 0;
  int resets = 0;
  bool request_ended = false;
  std::string body;
};

class FakeConnection final : public PooledConnection {
 public:
  UpstreamStream& newStream(UpstreamStreamCallbacks& cb) override {
    callbacks = &cb;
    return stream;
  }
  bool multiplexed() const override { return false; }
  uint64_t requestsServed() const override { return served; }
  const std::string& addressText() const override { return address; }
  uint64_t streamsStarted() const override { return served; }
  std::chrono::steady_clock::time_point createdAt() const override { return created; }
  std::chrono::nanoseconds connectTime() const override { return std::chrono::milliseconds(3); }

  std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
  UpstreamStreamCallbacks* callbacks = nullptr;
  FakeUpstreamStream stream;
  uint64_t served = 0;
  std::string address = "192.0.2.10:8000";
};

// The pool: keeps the waiter; the test answers it.
class FakeSource final : public UpstreamSource {
 public:
  void acquire(PoolCallbacks& w) override {
    ++acquires;
    waiter = &w;
  }
  void cancel(PoolCallbacks& w) override {
    EXPECT_EQ(&w, waiter) << "cancel from a waiter the pool does not hold";
    ++cancels;
    waiter = nullptr;
  }
  // Hands the waiting request `connection`, as the pool does (the waiter leaves its hands).
  void ready(FakeConnection& connection) {
    ASSERT_NE(waiter, nullptr);
    std::exchange(waiter, nullptr)->onPoolReady(connection);
  }
  void fail(ErrorCode code, std::string_view address) {
    ASSERT_NE(waiter, nullptr);
    std::exchange(waiter, nullptr)->onPoolFailure(code, "test", address);
  }

  PoolCallbacks* waiter = nullptr;
  int acquires = 0;
  int cancels = 0;
};

constexpr std::string_view kConfig = R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
upstreams:
  - name: app
    url: http://192.0.2.10:8000
    limits:
      max_concurrent_requests: 1
      max_queued_requests: 0
    retries:
      attempts: 2
)";

class ExchangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigLoadResult loaded = loadConfigString(kConfig, "exchange_test.yaml");
    ASSERT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors[0].format());
    config_ = loaded.config;

    char name[] = "/tmp/viscount-exchange-XXXXXX";
    log_fd_ = ::mkstemp(name);
    ASSERT_GE(log_fd_, 0);
    log_path_ = name;
    access_log_ = AccessLog::openFd(log_fd_, config_->logging, 1);
    null_fd_ = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    events_ = EventLog::create(LogFormat::kJson, LogLevel::kError, null_fd_);
    services_ =
        std::make_unique<ExchangeServices>(ExchangeServices{.loop = loop_,
                                                            .ids = ids_,
                                                            .request_buffers = buffers_,
                                                            .access_log = access_log_->shard(0),
                                                            .metrics = metrics_.shard(0),
                                                            .events = *events_});

    std::string error;
    auto snapshot = std::make_shared<WorkerSnapshot>();
    snapshot->config = config_;
    snapshot->context_filter = ContextFilter::create(config_->context, &error);
    ASSERT_TRUE(snapshot->context_filter) << error;
    const UpstreamConfig& u = config_->upstreams[0];
    auto upstream = std::make_unique<UpstreamRuntime>();
    upstream->config = &u;
    upstream->authority = u.url.authority();
    upstream->metrics = &metrics_.shard(0).upstream(u.name);
    auto slots = std::make_shared<SharedLimit>(std::vector<EventLoop*>{&loop_},
                                               u.limits.max_concurrent_requests);
    upstream->limiter = std::make_unique<RequestLimiter>(loop_, slots, 0, u.limits,
                                                         &metrics_.shard(0), upstream->metrics);
    upstream->source = &source_;
    ListenerRuntime listener;
    listener.config = &config_->listeners[0];
    listener.upstream = upstream.get();
    snapshot->upstreams.push_back(std::move(upstream));
    snapshot->listeners.push_back(listener);
    snapshot_ = snapshot;

    sockaddr_in peer{};
    peer.sin_family = AF_INET;
    peer.sin_port = htons(40000);
    peer.sin_addr.s_addr = htonl(0x7f000001);
    peer_.address = PeerAddress(reinterpret_cast<const sockaddr*>(&peer));
    peer_.trusted = true;
  }

  void TearDown() override {
    if (access_log_) access_log_->stop();
    if (log_fd_ >= 0) ::close(log_fd_);
    if (null_fd_ >= 0) ::close(null_fd_);
    if (!log_path_.empty()) ::unlink(log_path_.c_str());
  }

  std::unique_ptr<Exchange> newExchange(FakeDownstream& downstream) {
    return std::make_unique<Exchange>(*services_, snapshot_, snapshot_->listeners[0], downstream,
                                      downstream, peer_, nullptr, Clock::now(),
                                      std::chrono::system_clock::now());
  }

  // A GET with no body, as a codec hands it over.
  static RequestHead get(std::string_view target = "/orders") {
    RequestHead head;
    head.method = "GET";
    head.target = target;
    head.authority = "app.internal";
    head.scheme = "http";
    return head;
  }

  // The access-log lines written so far (the shard's batch flushed, the writer stopped).
  std::vector<nlohmann::json> logLines() {
    access_log_->shard(0).flush();
    access_log_->stop();
    std::ifstream in(log_path_);
    std::vector<nlohmann::json> lines;
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
    }
    return lines;
  }

  ConfigPtr config_;
  EventLoop loop_;
  IdGenerator ids_;
  RequestBuffers buffers_;
  Metrics metrics_{1};
  std::unique_ptr<AccessLog> access_log_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<ExchangeServices> services_;
  FakeSource source_;
  WorkerSnapshotPtr snapshot_;
  PeerInfo peer_;
  int log_fd_ = -1;
  int null_fd_ = -1;
  std::string log_path_;
};

TEST_F(ExchangeTest, SuccessCompletesOnceWhenTheResponseIsSent) {
  FakeDownstream client;
  auto exchange = newExchange(client);
  RequestHead head = get();
  exchange->onRequestHeaders(head);
  EXPECT_EQ(exchange->phase(), Exchange::Phase::kConnecting);
  ASSERT_EQ(source_.acquires, 1);

  FakeConnection connection;
  source_.ready(connection);
  EXPECT_EQ(exchange->phase(), Exchange::Phase::kUpstream);
  EXPECT_EQ(connection.stream.heads, 1);
  EXPECT_TRUE(connection.stream.request_ended);

  ResponseHead response;
  response.status = 200;
  connection.callbacks->onUpstreamHeaders(response, false);
  EXPECT_EQ(exchange->phase(), Exchange::Phase::kResponse);
  connection.callbacks->onUpstreamBody("hello", true);
  EXPECT_EQ(exchange->phase(), Exchange::Phase::kResponseDone);
  EXPECT_EQ(client.completions, 0) << "complete before the client had the response";

  exchange->onResponseSent();
  exchange->onResponseSent();  // a late duplicate changes nothing
  exchange->onDownstreamReset(ErrorCode::kClientDisconnected);
  EXPECT_EQ(client.completions, 1);
  EXPECT_TRUE(exchange->completed());
  EXPECT_EQ(client.status, 200);
  EXPECT_EQ(client.body, "hello");
  EXPECT_EQ(client.header("x-request-id"), exchange->context().request_id);

  const auto lines = logLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["status"], 200);
  EXPECT_TRUE(lines[0]["error"].is_null());
  EXPECT_EQ(lines[0]["attempts"], 1);
  EXPECT_EQ(lines[0]["request_id"], exchange->context().request_id);
}

TEST_F(ExchangeTest, AdmissionAnswersLocallyWhenNoSlotIsLeft) {
  // max_concurrent_requests 1 and no queue: the first request holds the slot while it waits for
  // a connection, the second is answered by admission with the JSON page and never reaches the
  // pool.
  FakeDownstream first_client;
  auto first = newExchange(first_client);
  RequestHead first_head = get();
  first->onRequestHeaders(first_head);
  ASSERT_EQ(source_.acquires, 1);

  FakeDownstream client;
  auto exchange = newExchange(client);
  RequestHead head = get("/second");
  exchange->onRequestHeaders(head);
  EXPECT_EQ(source_.acquires, 1);
  EXPECT_EQ(client.status, 503);
  EXPECT_TRUE(client.ended);
  EXPECT_EQ(client.header("content-type"), "application/json");
  EXPECT_EQ(client.header("proxy-status"),
            "viscount; error=connection_limit_reached; details=\"overloaded\"");
  EXPECT_EQ(client.header("retry-after"), "1");
  const auto page = nlohmann::json::parse(client.body);
  EXPECT_EQ(page["error"], "overloaded");
  EXPECT_EQ(page["status"], 503);
  EXPECT_EQ(page["request_id"], exchange->context().request_id);
  EXPECT_EQ(client.header("x-request-id"), exchange->context().request_id);

  exchange->onResponseSent();
  EXPECT_EQ(client.completions, 1);
  // The first request gives up (its client left): it leaves the pool's waiters, exactly once.
  first->onDownstreamReset(ErrorCode::kClientDisconnected);
  EXPECT_EQ(source_.cancels, 1);
  EXPECT_EQ(first_client.completions, 1);

  const auto lines = logLines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["status"], 503);
  EXPECT_EQ(lines[0]["error"], "overloaded");
  EXPECT_EQ(lines[0]["path"], "/second");
}

TEST_F(ExchangeTest, PoolFailureIsRetriedOnAnotherConnection) {
  FakeDownstream client;
  auto exchange = newExchange(client);
  RequestHead head = get();
  exchange->onRequestHeaders(head);
  source_.fail(ErrorCode::kUpstreamConnectFailed, "192.0.2.10:8000");
  EXPECT_EQ(source_.acquires, 2) << "a refused connect of a GET is tried again";
  EXPECT_EQ(exchange->phase(), Exchange::Phase::kConnecting);
  EXPECT_EQ(client.status, 0) << "nothing answered yet";

  FakeConnection connection;
  source_.ready(connection);
  ResponseHead response;
  response.status = 204;
  connection.callbacks->onUpstreamHeaders(response, true);
  exchange->onResponseSent();
  EXPECT_EQ(client.completions, 1);
  EXPECT_EQ(client.status, 204);

  const auto lines = logLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["status"], 204);
  EXPECT_TRUE(lines[0]["error"].is_null());
  EXPECT_EQ(lines[0]["attempts"], 2);
}

TEST_F(ExchangeTest, PoolFailuresBeyondTheRetriesAreA502) {
  FakeDownstream client;
  auto exchange = newExchange(client);
  RequestHead head = get();
  exchange->onRequestHeaders(head);
  for (int i = 0; i < 3; ++i)
    source_.fail(ErrorCode::kUpstreamConnectFailed, "192.0.2.10:8000");
  EXPECT_EQ(source_.acquires, 3) << "one attempt and two retries";
  EXPECT_EQ(source_.waiter, nullptr);
  EXPECT_EQ(client.status, 502);
  exchange->onResponseSent();
  EXPECT_EQ(client.completions, 1);

  const auto lines = logLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["error"], "upstream_connect_failed");
  EXPECT_EQ(lines[0]["attempts"], 3);
}

TEST_F(ExchangeTest, UpstreamResetAfterTheHeadResetsTheClientStream) {
  FakeDownstream client;
  auto exchange = newExchange(client);
  RequestHead head = get();
  exchange->onRequestHeaders(head);
  FakeConnection connection;
  source_.ready(connection);
  ResponseHead response;
  response.status = 200;
  connection.callbacks->onUpstreamHeaders(response, false);
  connection.callbacks->onUpstreamBody("part", false);
  connection.callbacks->onUpstreamReset(ErrorCode::kUpstreamReset, true);

  EXPECT_EQ(client.reset, ErrorCode::kUpstreamReset) << "a started response cannot become a 502";
  EXPECT_EQ(client.completions, 1);
  EXPECT_EQ(source_.acquires, 1) << "no retry once the response has started";
  exchange->onResponseSent();
  exchange->onDownstreamReset(ErrorCode::kClientDisconnected);
  EXPECT_EQ(client.completions, 1);

  const auto lines = logLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["status"], 200);
  EXPECT_EQ(lines[0]["error"], "upstream_reset");
  EXPECT_EQ(lines[0]["bytes_out"], 4);
}

TEST_F(ExchangeTest, ClientAbortWhileWaitingLeavesThePoolAndLogsOnce) {
  FakeDownstream client;
  auto exchange = newExchange(client);
  RequestHead head = get();
  exchange->onRequestHeaders(head);
  ASSERT_NE(source_.waiter, nullptr);

  exchange->onDownstreamReset(ErrorCode::kClientDisconnected);
  EXPECT_EQ(source_.cancels, 1);
  EXPECT_EQ(source_.waiter, nullptr);
  EXPECT_EQ(client.completions, 1);
  EXPECT_EQ(client.status, 0) << "nothing is sent to a client that left";
  exchange->sendLocalReply(ErrorCode::kDraining);  // too late: nothing happens
  exchange.reset();                                // nor when it is deleted
  EXPECT_EQ(source_.cancels, 1);
  EXPECT_EQ(client.completions, 1);

  const auto lines = logLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["error"], "client_disconnected");
  EXPECT_EQ(lines[0]["status"], 0);
}

}  // namespace
}  // namespace viscount
