// Bodies through the proxy: byte-exact in both directions and every framing (Content-Length,
// chunked, close-delimited), trailers both ways, and bounded memory when one side is slower than
// the other (the proxy runs in this process, so its memory is this process's VmRSS).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"

namespace viscount::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr size_t kMiB = 1024 * 1024;

// No body limit: the backpressure tests send more than the default 10 MiB.
std::string streamingConfig(uint16_t upstream_port) {
  return withPort(R"(workers: 2
drain_timeout: 5s
listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
    limits:
      max_request_body_size: 0
upstreams:
  - name: app
    url: http://127.0.0.1:{port}
    timeouts:
      request: 60s
admin:
  address: 127.0.0.1:0
logging:
  level: info
)",
                  upstream_port);
}

// Every byte value first, then pseudo-random bytes.
std::string randomBytes(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  std::mt19937 rng(seed);
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<char>(i < 256 ? i : rng() & 0xff);
  return out;
}

// Compares without printing megabytes on failure.
::testing::AssertionResult sameBytes(const std::string& expected, const std::string& actual) {
  const size_t common = std::min(expected.size(), actual.size());
  const auto mismatch = std::mismatch(expected.begin(), expected.begin() + common, actual.begin());
  const size_t at = static_cast<size_t>(mismatch.first - expected.begin());
  if (at == common && expected.size() == actual.size()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected " << expected.size() << " bytes, got "
                                       << actual.size() << "; first difference at offset " << at;
}

// ---- a generated stream, for bodies too large to keep ------------------------------------------

// Byte i of the stream is table[i % kPeriod]; the period is prime, so no buffer or chunk size
// lines up with it and a lost, repeated or reordered piece shows as a mismatch.
class Pattern {
 public:
  static constexpr size_t kPeriod = 65521;

  static const std::string& table() {
    static const std::string t = randomBytes(kPeriod, 0x5eed);
    return t;
  }
  static void fill(uint64_t offset, char* out, size_t n) {
    const std::string& t = table();
    size_t at = static_cast<size_t>(offset % kPeriod);
    while (n > 0) {
      const size_t k = std::min(n, kPeriod - at);
      std::memcpy(out, t.data() + at, k);
      out += k;
      n -= k;
      at = 0;
    }
  }
  static bool matches(uint64_t offset, const char* data, size_t n) {
    const std::string& t = table();
    size_t at = static_cast<size_t>(offset % kPeriod);
    while (n > 0) {
      const size_t k = std::min(n, kPeriod - at);
      if (std::memcmp(data, t.data() + at, k) != 0) return false;
      data += k;
      n -= k;
      at = 0;
    }
    return true;
  }
};

// Checks a stream as it arrives: counts bytes and remembers the first mismatch.
struct StreamChecker {
  uint64_t received = 0;
  int64_t first_mismatch = -1;

  void add(const char* data, size_t n) {
    if (first_mismatch < 0 && !Pattern::matches(received, data, n)) {
      first_mismatch = static_cast<int64_t>(received);
    }
    received += n;
  }
};

// Sleeps as needed to keep a transfer at or below `bytes_per_second`.
class Throttle {
 public:
  explicit Throttle(double bytes_per_second) : rate_(bytes_per_second) {}
  void account(size_t n) {
    done_ += n;
    const auto due = start_ + std::chrono::duration_cast<steady_clock::duration>(
                                  std::chrono::duration<double>(done_ / rate_));
    if (due > steady_clock::now()) std::this_thread::sleep_until(due);
  }

 private:
  double rate_;
  double done_ = 0;
  steady_clock::time_point start_ = steady_clock::now();
};

size_t rssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6)) * 1024;
  }
  return 0;
}

// Samples this process's resident memory until stopped; reports the peak.
class RssMonitor {
 public:
  RssMonitor() : baseline_(rssBytes()), peak_(baseline_) {
    thread_ = std::thread([this] {
      while (!stop_) {
        peak_ = std::max(peak_.load(), rssBytes());
        std::this_thread::sleep_for(milliseconds(10));
      }
    });
  }
  ~RssMonitor() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  size_t growth() const { return peak_ - baseline_; }

 private:
  size_t baseline_;
  std::atomic<size_t> peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A bare upstream for the streaming tests: accepts connections and runs `serve` on each in a
// thread, with blocking I/O, so it can read or write at any pace without storing the body.
class StreamingUpstream {
 public:
  explicit StreamingUpstream(std::function<void(int fd)> serve) : serve_(std::move(serve)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 64) != 0) {
      throw std::runtime_error("streaming upstream: cannot listen");
    }
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] {
      while (!stopping_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard<std::mutex> lock(mutex_);
        fds_.push_back(fd);
        threads_.emplace_back([this, fd] { serve_(fd); });
      }
    });
  }
  ~StreamingUpstream() {
    stopping_ = true;
    accept_thread_.join();
    std::lock_guard<std::mutex> lock(mutex_);
    for (int fd : fds_)
      ::shutdown(fd, SHUT_RDWR);
    for (auto& t : threads_)
      t.join();
    for (int fd : fds_)
      ::close(fd);
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  std::function<void(int)> serve_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread accept_thread_;
};

// Reads a message head; whatever followed it is left in `rest`. `head` is empty on EOF.
bool readHead(int fd, std::string& head, std::string& rest) {
  head.clear();
  std::string buf;
  char tmp[16384];
  for (;;) {
    const size_t end = buf.find("\r\n\r\n");
    if (end != std::string::npos) {
      head = buf.substr(0, end + 4);
      rest = buf.substr(end + 4);
      return true;
    }
    const ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
  }
}

// The warm-up request before each backpressure test: answered, and the connection kept.
bool answeredWarmUp(int fd, const std::string& head) {
  if (head.rfind("GET /warm ", 0) != 0) return false;
  const std::string reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
  return sendAll(fd, reply);
}

// ---- byte-exact bodies -------------------------------------------------------------------------

TEST(BodyStreaming, RequestBodyWithContentLengthIsByteExact) {
  TestUpstream upstream;
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  const std::string body = randomBytes(8 * kMiB, 1);
  RawConnection c(proxy.port());
  ASSERT_TRUE(
      c.send(buildRequest("PUT", "/blob", {{"Content-Type", "application/octet-stream"}}, body)));
  auto r = c.readResponse(false, seconds(20));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_FALSE(reqs[0].chunked);
  EXPECT_EQ(reqs[0].header("content-length"), std::to_string(body.size()));
  EXPECT_TRUE(sameBytes(body, reqs[0].body));
  auto log = proxy.accessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["bytes_in"], body.size());
}

TEST(BodyStreaming, ChunkedRequestBodyInOddChunkSizesIsByteExact) {
  TestUpstream upstream;
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  const std::string body = randomBytes(8 * kMiB + 17, 2);
  const size_t sizes[] = {1, 7, 255, 4093, 65537, 1000003, 3, 16384, 333333};
  std::string wire;
  size_t i = 0;
  for (size_t off = 0; off < body.size(); ++i) {
    const size_t n = std::min(sizes[i % std::size(sizes)], body.size() - off);
    wire += hex(n);
    if (i % 5 == 1) wire += ";ext=" + std::to_string(i);  // extensions are not body bytes
    wire += "\r\n";
    wire.append(body, off, n);
    wire += "\r\n";
    off += n;
  }
  wire += "0\r\n\r\n";

  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("POST", "/chunks", {{"Transfer-Encoding", "chunked"}})));
  // Several writes at arbitrary offsets, so chunk headers straddle reads.
  for (size_t off = 0; off < wire.size();) {
    const size_t n = std::min<size_t>(wire.size() - off, 12345 + off % 777);
    ASSERT_TRUE(c.send(std::string_view(wire).substr(off, n)));
    off += n;
  }
  auto r = c.readResponse(false, seconds(20));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_TRUE(reqs[0].chunked);
  EXPECT_EQ(reqs[0].count("content-length"), 0u);
  EXPECT_TRUE(sameBytes(body, reqs[0].body));
}

TEST(BodyStreaming, ResponseBodyWithContentLengthIsByteExact) {
  const std::string body = randomBytes(8 * kMiB, 3);
  TestUpstream upstream([&](const ReceivedRequest&) {
    UpstreamReply reply;
    reply.body = body;
    return reply;
  });
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/big")));
  auto r = c.readResponse(false, seconds(20));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->chunked);
  EXPECT_EQ(r->header("content-length"), std::to_string(body.size()));
  EXPECT_TRUE(sameBytes(body, r->body));
  auto log = proxy.accessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["bytes_out"], body.size());
}

TEST(BodyStreaming, ChunkedResponseInVariousChunkSizesIsByteExact) {
  struct Case {
    size_t chunk_size;
    size_t body_size;
  };
  const Case cases[] = {{1, 64 * 1024},
                        {3, 256 * 1024 + 1},
                        {1000, 2 * kMiB},
                        {16384, 8 * kMiB},
                        {kMiB + 7, 8 * kMiB + 3}};
  std::vector<std::string> bodies;
  for (size_t i = 0; i < std::size(cases); ++i)
    bodies.push_back(randomBytes(cases[i].body_size, 10 + static_cast<uint32_t>(i)));
  TestUpstream upstream([&](const ReceivedRequest& req) {
    const size_t i = std::stoul(req.target.substr(3));
    UpstreamReply reply;
    reply.body = bodies[i];
    reply.chunked = true;
    reply.chunk_size = cases[i].chunk_size;
    return reply;
  });
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  RawConnection c(proxy.port());
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE("chunk size " + std::to_string(cases[i].chunk_size));
    ASSERT_TRUE(c.send(buildRequest("GET", "/c/" + std::to_string(i))));
    auto r = c.readResponse(false, seconds(20));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(r->chunked);
    EXPECT_EQ(r->count("content-length"), 0u);
    EXPECT_EQ(r->count("transfer-encoding"), 1u);
    EXPECT_TRUE(sameBytes(bodies[i], r->body));
  }
}

TEST(BodyStreaming, CloseDelimitedResponseIsChunkedToHttp11Client) {
  const std::string body = randomBytes(8 * kMiB + 5, 4);
  TestUpstream upstream([&](const ReceivedRequest& req) {
    UpstreamReply reply;
    reply.body = req.target == "/small" ? "small" : body;
    reply.no_framing = true;
    return reply;
  });
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/eof")));
  auto r = c.readResponse(false, seconds(5));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->chunked) << "a close-delimited body must be re-framed for a keep-alive client";
  EXPECT_EQ(r->count("content-length"), 0u);
  EXPECT_TRUE(sameBytes(body, r->body));
  // The upstream's close ended its body, not the client's connection.
  ASSERT_TRUE(c.send(buildRequest("GET", "/small")));
  auto again = c.readResponse(false, seconds(5));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body, "small");
}

UpstreamReply smallUntilClose(const ReceivedRequest&) {
  UpstreamReply reply;
  reply.body = "until close";
  reply.no_framing = true;
  return reply;
}

// The same without backpressure: the body and the upstream's close arrive together.
TEST(BodyStreaming, SmallCloseDelimitedResponseEndsForHttp11Client) {
  TestUpstream upstream(&smallUntilClose);
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/eof")));
  auto r = c.readResponse(false, seconds(3));
  ASSERT_TRUE(r) << "the response never ended";
  EXPECT_TRUE(r->chunked);
  EXPECT_EQ(r->body, "until close");
  auto log = proxy.accessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["bytes_out"], 11);
}

TEST(BodyStreaming, SmallCloseDelimitedResponseEndsForHttp10Client) {
  TestUpstream upstream(&smallUntilClose);
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send("GET /eof HTTP/1.0\r\n\r\n"));
  auto r = c.readResponse(false, seconds(3));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "until close");
  EXPECT_TRUE(c.waitClosed(seconds(1))) << "the close-delimited response never ended";
  auto log = proxy.accessLog(1, seconds(1));
  EXPECT_EQ(log.size(), 1u) << "the exchange never completed";
}

TEST(BodyStreaming, CloseDelimitedResponseStaysCloseDelimitedToHttp10Client) {
  const std::string body = randomBytes(8 * kMiB + 5, 5);
  TestUpstream upstream([&](const ReceivedRequest&) {
    UpstreamReply reply;
    reply.body = body;
    reply.no_framing = true;
    return reply;
  });
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send("GET /eof HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto r = c.readResponse(false, seconds(5));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->chunked);
  EXPECT_EQ(r->count("transfer-encoding"), 0u);
  EXPECT_EQ(r->count("content-length"), 0u);
  EXPECT_TRUE(sameBytes(body, r->body));
  EXPECT_TRUE(c.waitClosed(seconds(1)));
}

// ---- trailers ----------------------------------------------------------------------------------

TEST(BodyStreaming, RequestTrailersPassThrough) {
  TestUpstream upstream;
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  const std::string body = randomBytes(300 * 1024, 6);
  std::string wire = buildRequest(
      "POST", "/t", {{"Transfer-Encoding", "chunked"}, {"Trailer", "x-checksum, x-other"}});
  for (size_t off = 0; off < body.size(); off += 100000) {
    const size_t n = std::min<size_t>(100000, body.size() - off);
    wire += hex(n) + "\r\n" + body.substr(off, n) + "\r\n";
  }
  wire += "0\r\nX-Checksum: abc123\r\nX-Other: two words\r\n\r\n";
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(wire));
  auto r = c.readResponse(false, seconds(10));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_TRUE(reqs[0].chunked);
  EXPECT_TRUE(sameBytes(body, reqs[0].body));
  EXPECT_EQ(headerValue(reqs[0].trailers, "x-checksum"), "abc123");
  EXPECT_EQ(headerValue(reqs[0].trailers, "x-other"), "two words");
}

TEST(BodyStreaming, ResponseTrailersPassThrough) {
  const std::string body = randomBytes(kMiB, 7);
  std::string raw = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-digest\r\n\r\n";
  for (size_t off = 0; off < body.size(); off += 70000) {
    const size_t n = std::min<size_t>(70000, body.size() - off);
    raw += hex(n) + "\r\n" + body.substr(off, n) + "\r\n";
  }
  raw += "0\r\nx-digest: sha-256=abc\r\nx-status-detail: fine\r\n\r\n";
  TestUpstream upstream([&](const ReceivedRequest&) {
    UpstreamReply reply;
    reply.raw = raw;
    return reply;
  });
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/t")));
  auto r = c.readResponse(false, seconds(10));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->chunked);
  EXPECT_TRUE(sameBytes(body, r->body));
  EXPECT_EQ(headerValue(r->trailers, "x-digest"), "sha-256=abc");
  EXPECT_EQ(headerValue(r->trailers, "x-status-detail"), "fine");
  // The connection is still in step afterwards.
  ASSERT_TRUE(c.send(buildRequest("GET", "/t")));
  auto again = c.readResponse(false, seconds(10));
  ASSERT_TRUE(again);
  EXPECT_EQ(headerValue(again->trailers, "x-digest"), "sha-256=abc");
}

// ---- backpressure ------------------------------------------------------------------------------

constexpr size_t kMaxRssGrowth = 16 * kMiB;

// AddressSanitizer keeps freed blocks in a quarantine of up to 256 MiB, so the process's RSS says
// nothing about the proxy's buffering there; the optimised build makes the memory assertion.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRssIsMeaningful = false;
#else
constexpr bool kRssIsMeaningful = true;
#endif

void expectBoundedRss(size_t growth) {
  ::testing::Test::RecordProperty("rss_growth_bytes", std::to_string(growth));
  if (!kRssIsMeaningful) return;
  EXPECT_LT(growth, kMaxRssGrowth) << "RSS grew by " << growth / kMiB << " MiB";
}

TEST(BodyStreaming, LargeRequestToSlowUpstreamIsStreamedInBoundedMemory) {
  constexpr uint64_t kSize = 64 * kMiB;
  StreamChecker checker;
  std::string upstream_head;
  std::atomic<bool> upstream_done{false};
  StreamingUpstream upstream([&](int fd) {
    std::string head, rest;
    while (readHead(fd, head, rest) && answeredWarmUp(fd, head)) {
    }
    if (head.empty()) return;
    upstream_head = head;
    checker.add(rest.data(), rest.size());
    Throttle throttle(48.0 * kMiB);  // the client can send far faster than this
    std::vector<char> buf(64 * 1024);
    while (checker.received < kSize) {
      const size_t want = std::min<uint64_t>(buf.size(), kSize - checker.received);
      const ssize_t n = ::recv(fd, buf.data(), want, 0);
      if (n <= 0) return;
      checker.add(buf.data(), static_cast<size_t>(n));
      throttle.account(static_cast<size_t>(n));
    }
    upstream_done = true;
    const std::string reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    sendAll(fd, reply);
    char c;
    ::recv(fd, &c, 1, 0);  // until the proxy closes or the test ends
  });
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  Pattern::table();
  {
    auto warm = httpRequest(proxy.port(), "GET", "/warm");  // pools, buffers, threads
    ASSERT_TRUE(warm);
  }

  RssMonitor rss;
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(
      "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(kSize) + "\r\n\r\n"));
  std::vector<char> buf(256 * 1024);
  for (uint64_t off = 0; off < kSize; off += buf.size()) {
    Pattern::fill(off, buf.data(), buf.size());
    ASSERT_TRUE(c.send(std::string_view(buf.data(), buf.size()))) << "at offset " << off;
  }
  auto r = c.readResponse(false, seconds(20));
  rss.stop();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(upstream_done);
  EXPECT_EQ(checker.received, kSize);
  EXPECT_EQ(checker.first_mismatch, -1);
  EXPECT_NE(lower(upstream_head).find("content-length: " + std::to_string(kSize)),
            std::string::npos)
      << upstream_head;
  expectBoundedRss(rss.growth());
}

TEST(BodyStreaming, LargeResponseToSlowClientIsStreamedInBoundedMemory) {
  constexpr uint64_t kSize = 256 * kMiB;
  std::atomic<uint64_t> upstream_sent{0};
  StreamingUpstream upstream([&](int fd) {
    std::string head, rest;
    while (readHead(fd, head, rest) && answeredWarmUp(fd, head)) {
    }
    if (head.empty()) return;
    const std::string reply_head =
        "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(kSize) + "\r\n\r\n";
    if (!sendAll(fd, reply_head)) return;
    std::vector<char> buf(256 * 1024);
    for (uint64_t off = 0; off < kSize; off += buf.size()) {
      Pattern::fill(off, buf.data(), buf.size());
      if (!sendAll(fd, std::string_view(buf.data(), buf.size()))) return;
      upstream_sent = off + buf.size();
    }
  });
  ProxyUnderTest proxy(streamingConfig(upstream.port()));
  Pattern::table();
  {
    auto warm = httpRequest(proxy.port(), "GET", "/warm");
    ASSERT_TRUE(warm);
  }

  RssMonitor rss;
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/big")));
  std::string head, rest;
  ASSERT_TRUE(readHead(c.fd(), head, rest));
  EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u) << head;
  EXPECT_NE(lower(head).find("content-length: " + std::to_string(kSize)), std::string::npos)
      << head;
  StreamChecker checker;
  checker.add(rest.data(), rest.size());
  Throttle throttle(96.0 * kMiB);  // the upstream writes far faster than this
  std::vector<char> buf(64 * 1024);
  const auto deadline = steady_clock::now() + seconds(15);
  while (checker.received < kSize && steady_clock::now() < deadline) {
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    const ssize_t n = ::recv(c.fd(), buf.data(), buf.size(), 0);
    if (n <= 0) break;
    checker.add(buf.data(), static_cast<size_t>(n));
    throttle.account(static_cast<size_t>(n));
  }
  rss.stop();
  EXPECT_EQ(checker.received, kSize);
  EXPECT_EQ(checker.first_mismatch, -1);
  EXPECT_EQ(upstream_sent.load(), kSize);
  expectBoundedRss(rss.growth());
}

}  // namespace
}  // namespace viscount::test
