// Fuzzes what a client's bytes reach on a listener that speaks HTTP/2. The input is the byte
// stream of one client connection (the h2c connection preface, then frames). It runs through
// viscount itself, in this process and on this thread: a Worker (not started: its loop is turned
// here) serves one end of a socketpair as it serves an accepted socket, so the bytes meet
// Http1ServerConnection's preface check, then Http2ServerConnection with its nghttp2 session
// (the flood-defence options, header limits counted decoded, pseudo-header and content-length
// checks, trailers), Exchange with the request filters, the upstream pool, and
// Http1ClientCodec. The upstream is played here too, on a unix socket the pool connects to:
// it parses every request with Http1Parser and answers in a way drawn from the input's hash
// (lengths, chunked with trailers, 1xx, 204/304, early, cut, dropped, garbage, silent, close-
// delimited, hostile headers), so the response paths of the HTTP/2 codec run as well.
//
// Checked beyond the sanitizers:
// - every request the upstream receives parses (no smuggled or malformed request), carries one
//   of each context and forwarding header, a valid trace parent and a budget within the
//   upstream's, no hop-by-hop field and no user id from an untrusted peer; a request never
//   arrives before the previous response on its connection was sent;
// - what the client receives is well-formed HTTP/2: a SETTINGS frame first, frames no larger
//   than the default maximum, header blocks that decode (HPACK) into lowercase names without
//   connection-specific fields or bad values, :status first in a response and absent from
//   trailers, exactly one request id and correlation id in every final response, no frame on a
//   stream after it ended, and as many DATA bytes as a content-length said;
// - once the client has gone, the connection closes, every request gives back its concurrency
//   slot and every upstream connection closes.
//
// The client sends in pieces or all at once, may read late (the proxy's output fills up), and
// the worker may drain and then give up on what is in flight, as SIGTERM and its timeout do.
//
// Not run: TLS (ALPN h2), the timeouts (nothing waits for the clock: idle, stalled client,
// header block deadline), request bodies large enough to pause the client (inputs are 8 KiB),
// HTTP/2 upstreams, config reloads, the access log (off: see World).

#include <fcntl.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/ascii.h"
#include "config/config_loader.h"
#include "filters/header_name_table.h"
#include "filters/header_sanitizer.h"
#include "filters/trace_context.h"
#include "proxy/http1_parser.h"
#include "proxy/http2_common.h"
#include "proxy/worker.h"
#include "telemetry/access_log.h"
#include "telemetry/event_log.h"
#include "telemetry/metrics.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/http1_messages.h"

namespace viscount::fuzz {
namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr uint64_t kUpstreamBudgetMs = 15000;
constexpr size_t kMaxTurns = 4000;       // loop turns while the client sends and reads
constexpr size_t kQuietTurns = 3;        // turns without any I/O that end a phase
constexpr size_t kCloseTurns = 200;      // turns the proxy gets to clean up after the client left
constexpr size_t kMaxFrameSize = 16384;  // SETTINGS_MAX_FRAME_SIZE's default: nghttp2 keeps it

// Listener 0 has the defaults; listener 1 small header and body limits, in front of an upstream
// with one connection, two requests at a time, one queued and a retry.
constexpr std::string_view kConfig = R"(workers: 1
io_uring: false
watch_config: false
listeners:
  - name: inbound
    address: 127.0.0.1:15006
    upstream: app
  - name: tight
    address: 127.0.0.1:15007
    upstream: narrow
    limits: {max_request_headers_size: 512, max_request_headers_count: 8,
             max_request_body_size: 100}
upstreams:
  - name: app
    url: http://app.internal:8000
  - name: narrow
    url: http://narrow.internal:8001
    pool: {size: 1, max_overflow: 0}
    limits: {max_concurrent_requests: 2, max_queued_requests: 1}
    retries: {attempts: 2}
logging: {access_log: "off", level: error}
admin: {address: "off"}
)";

// What lives as long as the process: the config, the services a worker uses and the unix socket
// the upstream listens on.
struct World {
  World() {
    std::signal(SIGPIPE, SIG_IGN);
    ConfigLoadResult loaded = loadConfigString(kConfig, "http2_server_fuzz.yaml");
    if (!loaded.ok()) {
      for (const ConfigError& e : loaded.errors)
        std::fprintf(stderr, "%s\n", e.format().c_str());
    }
    FUZZ_CHECK(loaded.ok());
    config = loaded.config;
    std::string error;
    context_filter = ContextFilter::create(config->context, &error);
    FUZZ_CHECK(context_filter != nullptr);

    // The access log stays off: its writer thread would free what this thread allocated, and
    // libFuzzer would take every input for a leak suspect and scan the heap after it.
    access_log = AccessLog::openFd(-1, config->logging, 1);
    metrics = std::make_unique<Metrics>(1);
    devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    FUZZ_CHECK(devnull >= 0);
    events = EventLog::create(LogFormat::kJson, LogLevel::kError, devnull);
    for (size_t i = 0; i < config->listeners.size(); ++i)
      listener_connections.push_back(std::make_unique<std::atomic<int64_t>>(0));
    services.access_log = access_log.get();
    services.metrics = metrics.get();
    services.events = events.get();
    services.listener_connections = &listener_connections;

    // An abstract unix socket (no file), named after the process: parallel runs do not meet.
    auto* un = reinterpret_cast<sockaddr_un*>(&upstream_address.addr);
    un->sun_family = AF_UNIX;
    const int n = std::snprintf(un->sun_path + 1, sizeof(un->sun_path) - 1,
                                "viscount-http2-fuzz-%d", static_cast<int>(::getpid()));
    upstream_address.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
    upstream_listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(upstream_listener >= 0);
    FUZZ_CHECK(::bind(upstream_listener, reinterpret_cast<const sockaddr*>(&upstream_address.addr),
                      upstream_address.len) == 0);
    FUZZ_CHECK(::listen(upstream_listener, 256) == 0);
  }

  ConfigPtr config;
  std::shared_ptr<const ContextFilter> context_filter;
  int devnull = -1;
  std::unique_ptr<AccessLog> access_log;
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<EventLog> events;
  std::vector<std::unique_ptr<std::atomic<int64_t>>> listener_connections;
  WorkerServices services;
  ResolvedAddress upstream_address;
  int upstream_listener = -1;
};

// VISCOUNT_FUZZ_TRACE=1 prints what each side saw, for reading a reproducer.
bool tracing() {
  static const bool on = std::getenv("VISCOUNT_FUZZ_TRACE") != nullptr;
  return on;
}

#define FUZZ_TRACE(...)                               \
  do {                                                \
    if (tracing()) std::fprintf(stderr, __VA_ARGS__); \
  } while (false)

World& world() {
  static World* w = new World();  // never destroyed: no teardown order to think about
  return *w;
}

// ---- the upstream ---------------------------------------------------------------------------

enum class Reply : uint8_t {
  kLength,      // content-length body
  kChunked,     // chunked body, then trailers
  kEmpty,       // 204 or 304
  kInterim,     // 100 or 103 first, then a content-length body
  kEarly,       // a content-length response as soon as the head arrives
  kCut,         // content-length, part of the body, then the connection closes
  kCutChunked,  // one chunk, then the connection closes
  kDrop,        // the connection closes without a response
  kGarbage,     // not HTTP
  kSilent,      // never answers
  kUntilClose,  // no framing: the body ends with the connection
};

struct Plan {
  Reply reply = Reply::kLength;
  int status = 200;
  size_t body = 0;
  bool keep_alive = true;
  bool hostile = false;  // hop-by-hop fields, upstream ids, duplicates
  bool big = false;      // a field larger than the tight listener's header block limit
};

Plan choosePlan(Choices& c) {
  static constexpr Reply kReplies[] = {
      Reply::kLength, Reply::kLength,  Reply::kLength, Reply::kChunked,   Reply::kChunked,
      Reply::kEmpty,  Reply::kInterim, Reply::kEarly,  Reply::kCut,       Reply::kCutChunked,
      Reply::kDrop,   Reply::kGarbage, Reply::kSilent, Reply::kUntilClose};
  static constexpr size_t kBodies[] = {0, 1, 17, 100, 1000, 5000, 20000, 70000};
  static constexpr int kStatuses[] = {200, 200, 200, 201, 302, 404, 500, 503};
  Plan p;
  p.reply = kReplies[c.below(std::size(kReplies))];
  p.status = kStatuses[c.below(std::size(kStatuses))];
  if (p.reply == Reply::kEmpty) p.status = c.oneIn(2) ? 204 : 304;
  // Large bodies rarely: they wait on the client's flow-control windows.
  p.body = kBodies[c.oneIn(6) ? c.below(std::size(kBodies)) : c.below(5)];
  p.keep_alive = !c.oneIn(4);
  p.hostile = c.oneIn(4);
  p.big = c.oneIn(32);
  return p;
}

std::string bodyBytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + i % 26);
  return s;
}

// The response head's fields beyond framing.
std::string fieldsOf(const Plan& p) {
  std::string s = "server: fuzz-upstream\r\n";
  if (p.hostile) {
    s += "Connection: x-drop-me";
    s += p.keep_alive ? "\r\n" : ", close\r\n";
    s += "X-Drop-Me: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n";
    s += "X-Request-Id: from-the-upstream\r\nx-correlation-id: one\r\nx-correlation-id: two\r\n";
    s += "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX_Request_Id: lookalike\r\n";
  } else if (!p.keep_alive) {
    s += "connection: close\r\n";
  }
  if (p.big) s += "x-big: " + std::string(6000, 'b') + "\r\n";
  return s;
}

// One connection the pool opened to the upstream: requests parsed as an HTTP/1.1 server would,
// each answered by its plan.
class UpstreamPeer final : public Http1ParserHandler {
 public:
  UpstreamPeer(int fd, Choices& choices, bool trusted_client)
      : fd_(fd), choices_(choices), trusted_client_(trusted_client) {}
  ~UpstreamPeer() override { closeFd(); }

  bool open() const { return fd_ >= 0; }

  // Reads what arrived, answers, writes what it can. True when any byte moved.
  bool step() {
    if (fd_ < 0) return false;
    bool moved = false;
    char buf[16384];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        moved = true;
        if (!stopped_) {
          in_.append(buf, static_cast<size_t>(n));
          parse();
        }
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        closeFd();  // the proxy closed (or reset) the connection
        return true;
      }
      if (errno == EAGAIN) break;
    }
    return writeOut() || moved;
  }

  // The proxy is done with this connection: read to the end, then close.
  void closeFd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  void parse() {
    while (!stopped_ && in_.size() > parsed_) {
      const Http1Parser::Result r = parser_->execute(in_.data(), parsed_, in_.size() - parsed_);
      switch (r.status) {
        case Http1Parser::Status::kError:
          if (parser_->error() == ErrorCode::kNotImplemented && replaceMethod()) continue;
          std::fprintf(stderr, "the upstream cannot parse what the proxy sent (%s):\n%s\n",
                       parser_->errorReason().c_str(), escaped(in_).c_str());
          FUZZ_FAIL("a malformed request reached the upstream");
        case Http1Parser::Status::kPaused:
          in_.erase(0, parsed_ + r.consumed);
          parsed_ = 0;
          if (stopped_) return;
          parser_->resume();
          continue;
        case Http1Parser::Status::kOk:
          if (parser_->inHeaders() && parser_->messageStarted()) {
            parsed_ = in_.size();  // the head so far stays in place
          } else {
            in_.clear();
            parsed_ = 0;
          }
          return;
      }
    }
  }

  // HTTP/2 passes any method token on ("methods are case-sensitive tokens"), and real upstreams
  // take them; llhttp knows a fixed list. A token it does not know is checked here and the
  // request parsed again as a POST (framing comes from the fields either way).
  bool replaceMethod() {
    const size_t space = in_.find(' ');
    if (space == std::string::npos || space == 0) return false;
    for (size_t i = 0; i < space; ++i) {
      if (!isTchar(in_[i])) return false;
    }
    FUZZ_TRACE("upstream: method %s parsed as POST\n", escaped(in_.substr(0, space)).c_str());
    in_.replace(0, space, "POST");
    parsed_ = 0;
    parser_ = std::make_unique<Http1Parser>(Http1Parser::Kind::kRequest, *this);
    in_request_ = false;  // the message begins again
    answered_ = true;
    return true;
  }

  static bool isTchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  }

  void onMessageBegin() override {
    // HTTP/1 upstreams get one request at a time: the next only after the whole response.
    if (in_request_ || !answered_ || !out_.empty() || close_after_out_) {
      std::fprintf(stderr, "a request began before the previous response was sent\n");
      FUZZ_FAIL("a request overtook its connection's previous response");
    }
    in_request_ = true;
    answered_ = false;
  }

  bool onHeadersComplete(Http1Head& h) override {
    checkRequest(h);
    head_request_ = h.method == "HEAD";
    plan_ = choosePlan(choices_);
    if (plan_.reply == Reply::kEarly) answer();
    return true;
  }

  void onBody(std::string_view data) override { FUZZ_CHECK(!data.empty()); }

  void onTrailers(HeaderList& trailers) override {
    for (const HeaderField& f : trailers.fields()) {
      if (f.removed) continue;
      FUZZ_CHECK(!isHopByHopHeader(f.name));
    }
  }

  bool onMessageComplete() override {
    in_request_ = false;
    if (!answered_) answer();
    return true;  // pause: the next request is parsed after this one's response
  }

  // What the request phase promises the upstream (see filterRequestHead).
  void checkRequest(const Http1Head& h) {
    FUZZ_TRACE("upstream got: %s\n", escaped(describeHead(h)).c_str());
    const Fields fields = kept(*h.headers);
    auto count = [&](std::string_view name) {
      size_t n = 0;
      for (const auto& [field, value] : fields)
        n += equalsIgnoreCase(field, name);
      return n;
    };
    auto value = [&](std::string_view name) -> std::string_view {
      for (const auto& [field, v] : fields) {
        if (equalsIgnoreCase(field, name)) return v;
      }
      return {};
    };
    const bool ok = count("x-request-id") == 1 && count("x-correlation-id") == 1 &&
                    (trusted_client_ || count("x-user-id") == 0) && count("x-user-id") <= 1 &&
                    count("x-forwarded-for") == 1 && count("x-forwarded-proto") == 1 &&
                    count("traceparent") == 1 && count("tracestate") <= 1 &&
                    count("x-request-timeout-ms") == 1 && count("cookie") <= 1 &&
                    count("expect") == 0 && !h.host.empty() && isValidAuthority(h.host) &&
                    (h.target == "*" || h.target.starts_with("/"));
    if (!ok) {
      std::fprintf(stderr, "request as the upstream got it:\n%s\n", describeHead(h).c_str());
      FUZZ_FAIL("the request phase's promises are broken");
    }
    for (const auto& [name, v] : fields) {
      if (isHopByHopHeader(name) || isUnderscoreLookalike(name, "x-request-id") ||
          isUnderscoreLookalike(name, "x-forwarded-for")) {
        std::fprintf(stderr, "field %s reached the upstream\n", escaped(name).c_str());
        FUZZ_FAIL("a hop-by-hop or look-alike field reached the upstream");
      }
    }
    const auto parent = parseTraceparent(value("traceparent"));
    FUZZ_CHECK(parent.has_value());
    const std::string_view forwarded_for = value("x-forwarded-for");
    const std::string_view client_ip = trusted_client_ ? "127.0.0.1" : "192.0.2.7";
    FUZZ_CHECK(trusted_client_ ? forwarded_for.ends_with(client_ip) : forwarded_for == client_ip);
    const std::string_view proto = value("x-forwarded-proto");
    FUZZ_CHECK(proto == "http" || (trusted_client_ && proto == "https"));
    const std::string_view budget = value("x-request-timeout-ms");
    uint64_t ms = 0;
    const auto [end, ec] = std::from_chars(budget.data(), budget.data() + budget.size(), ms);
    FUZZ_CHECK(ec == std::errc() && end == budget.data() + budget.size());
    FUZZ_CHECK(ms <= kUpstreamBudgetMs);
  }

  void answer() {
    answered_ = true;
    const Plan& p = plan_;
    FUZZ_TRACE("upstream answers: reply %d, status %d, body %zu%s%s%s\n", static_cast<int>(p.reply),
               p.status, p.body, p.keep_alive ? "" : ", close", p.hostile ? ", hostile" : "",
               p.big ? ", big" : "");
    const std::string body = head_request_ ? std::string() : bodyBytes(p.body);
    const std::string fields = fieldsOf(p);
    auto statusLine = [](int status) { return "HTTP/1.1 " + std::to_string(status) + " X\r\n"; };
    switch (p.reply) {
      case Reply::kLength:
      case Reply::kEarly:
        out_ += statusLine(p.status) + fields + "content-length: " + std::to_string(p.body) +
                "\r\n\r\n" + body;
        close_after_out_ = !p.keep_alive;
        break;
      case Reply::kInterim:
        out_ += p.body % 2 == 0 ? "HTTP/1.1 100 Continue\r\n\r\n"
                                : "HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n";
        out_ += statusLine(p.status) + fields + "content-length: " + std::to_string(p.body) +
                "\r\n\r\n" + body;
        close_after_out_ = !p.keep_alive;
        break;
      case Reply::kChunked: {
        out_ += statusLine(p.status) + fields + "transfer-encoding: chunked\r\n\r\n";
        if (!head_request_) {
          for (size_t at = 0; at < body.size(); at += 4096) {
            const std::string piece = body.substr(at, 4096);
            char size[16];
            std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
            out_ += size + piece + "\r\n";
          }
          out_ += "0\r\nx-checksum: 1234\r\nConnection: close\r\nx-trailer-2: two\r\n\r\n";
        }
        close_after_out_ = !p.keep_alive;
        break;
      }
      case Reply::kEmpty:
        out_ += statusLine(p.status) + fields + "\r\n";
        close_after_out_ = !p.keep_alive;
        break;
      case Reply::kCut:
        out_ += statusLine(p.status) + fields + "content-length: " + std::to_string(p.body + 10) +
                "\r\n\r\n" + body;
        close_after_out_ = true;
        break;
      case Reply::kCutChunked:
        out_ += statusLine(p.status) + fields + "transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
        close_after_out_ = true;
        break;
      case Reply::kDrop:
        close_after_out_ = true;
        break;
      case Reply::kGarbage:
        out_ += "HTTP/1.1 2x0 what\r\nbad header\r\n\r\n";
        close_after_out_ = true;
        break;
      case Reply::kSilent:
        answered_ = false;  // a later request on this connection would be an error
        stopped_ = true;
        break;
      case Reply::kUntilClose:
        out_ += statusLine(p.status) + "server: fuzz-upstream\r\n\r\n" + body;
        close_after_out_ = true;
        break;
    }
    if (close_after_out_) stopped_ = true;
  }

  bool writeOut() {
    bool moved = false;
    while (!out_.empty()) {
      const ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return moved;
        closeFd();  // the proxy went away
        return true;
      }
      out_.erase(0, static_cast<size_t>(n));
      moved = true;
    }
    if (close_after_out_) {
      closeFd();
      return true;
    }
    return moved;
  }

  int fd_;
  Choices& choices_;
  const bool trusted_client_;
  std::unique_ptr<Http1Parser> parser_ =
      std::make_unique<Http1Parser>(Http1Parser::Kind::kRequest, *this);
  std::string in_;
  size_t parsed_ = 0;
  std::string out_;
  Plan plan_;
  bool head_request_ = false;
  bool in_request_ = false;
  bool answered_ = true;  // nothing to answer before the first request
  bool close_after_out_ = false;
  bool stopped_ = false;  // nothing more is parsed (closing, or silent)
};

class Upstream {
 public:
  Upstream(Choices& choices, bool trusted_client)
      : choices_(choices), trusted_client_(trusted_client) {}

  bool step() {
    bool moved = false;
    for (;;) {
      const int fd =
          ::accept4(world().upstream_listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      peers_.push_back(std::make_unique<UpstreamPeer>(fd, choices_, trusted_client_));
      moved = true;
    }
    for (auto& peer : peers_)
      moved = peer->step() || moved;
    return moved;
  }

  bool allClosed() const {
    for (const auto& peer : peers_) {
      if (peer->open()) return false;
    }
    return true;
  }

 private:
  Choices& choices_;
  const bool trusted_client_;
  std::vector<std::unique_ptr<UpstreamPeer>> peers_;
};

// ---- HTTP/2 frames both ways ----------------------------------------------------------------

struct Frame {
  uint8_t type;
  uint8_t flags;
  int32_t stream;  // with the reserved bit, as sent: negative when it is set
  std::string_view payload;
};

// Calls `f` on each whole frame of `bytes` until it returns false; a frame cut at the end is not
// passed.
template <class F>
void forEachFrame(std::string_view bytes, F&& f) {
  while (bytes.size() >= 9) {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    const size_t length = (size_t{p[0]} << 16) | (size_t{p[1]} << 8) | p[2];
    if (bytes.size() - 9 < length) return;
    const Frame frame{p[3], p[4],
                      static_cast<int32_t>((uint32_t{p[5]} << 24) | (uint32_t{p[6]} << 16) |
                                           (uint32_t{p[7]} << 8) | p[8]),
                      bytes.substr(9, length)};
    bytes.remove_prefix(9 + length);
    if (!f(frame)) return;
  }
}

using FieldList = std::vector<std::pair<std::string, std::string>>;

// One side's HPACK decoder, fed each header block of a connection in order.
class BlockDecoder {
 public:
  BlockDecoder() { FUZZ_CHECK(nghttp2_hd_inflate_new(&inflater_) == 0); }
  ~BlockDecoder() { nghttp2_hd_inflate_del(inflater_); }
  BlockDecoder(const BlockDecoder&) = delete;
  BlockDecoder& operator=(const BlockDecoder&) = delete;

  // False when the block does not decode.
  bool decode(std::string_view block, FieldList* fields) {
    const auto* in = reinterpret_cast<const uint8_t*>(block.data());
    size_t left = block.size();
    for (;;) {
      nghttp2_nv nv;
      int flags = 0;
      const ssize_t n = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, in, left, 1);
      if (n < 0) return false;
      in += n;
      left -= static_cast<size_t>(n);
      if (flags & NGHTTP2_HD_INFLATE_EMIT) {
        fields->emplace_back(std::string(h2::view(nv.name, nv.namelen)),
                             std::string(h2::view(nv.value, nv.valuelen)));
      }
      if (flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inflater_);
        return true;
      }
      if (n == 0 && left == 0) return false;
    }
  }

 private:
  nghttp2_hd_inflater* inflater_ = nullptr;
};

// The :method of each request stream in the client's bytes, decoded as the server decodes them
// (every header block in order, for the shared HPACK state). Stops where the server would have
// stopped reading: a frame over the default maximum size, a broken header block sequence, a
// block that does not decode. Streams after that are not listed; the server answers none.
std::map<int32_t, std::string> requestMethods(std::string_view input) {
  std::map<int32_t, std::string> methods;
  if (!input.starts_with(kPreface)) return methods;
  input.remove_prefix(kPreface.size());
  BlockDecoder decoder;
  std::string block;
  int32_t block_stream = 0;
  bool in_block = false;
  auto finish = [&] {
    FieldList fields;
    if (!decoder.decode(block, &fields)) return false;
    for (const auto& [name, value] : fields) {
      if (name == ":method") {
        methods.emplace(block_stream, value);
        break;
      }
    }
    return true;
  };
  forEachFrame(input, [&](const Frame& f) {
    if (f.payload.size() > kMaxFrameSize) return false;
    if (in_block != (f.type == NGHTTP2_CONTINUATION)) return false;
    if (f.type == NGHTTP2_CONTINUATION) {
      if (f.stream != block_stream) return false;
      block.append(f.payload);
    } else if (f.type == NGHTTP2_HEADERS) {
      std::string_view payload = f.payload;
      size_t pad = 0;
      if (f.flags & NGHTTP2_FLAG_PADDED) {
        if (payload.empty()) return false;
        pad = static_cast<uint8_t>(payload.front());
        payload.remove_prefix(1);
      }
      if (f.flags & NGHTTP2_FLAG_PRIORITY) {
        if (payload.size() < 5) return false;
        payload.remove_prefix(5);
      }
      if (pad > payload.size()) return false;
      block.assign(payload.substr(0, payload.size() - pad));
      block_stream = f.stream;
    } else {
      return true;
    }
    in_block = (f.flags & NGHTTP2_FLAG_END_HEADERS) == 0;
    return in_block || finish();
  });
  return methods;
}

bool hasUpper(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return true;
  }
  return false;
}

bool validValue(std::string_view v) {
  for (char c : v) {
    if (c == '\0' || c == '\r' || c == '\n') return false;
  }
  return v.empty() ||
         (v.front() != ' ' && v.front() != '\t' && v.back() != ' ' && v.back() != '\t');
}

// Walks the server's frames and decodes its header blocks as a client would.
class ClientView {
 public:
  explicit ClientView(std::map<int32_t, std::string> methods) : methods_(std::move(methods)) {}

  void read(std::string_view out) {
    bool first = true;
    forEachFrame(out, [&](const Frame& f) {
      FUZZ_TRACE("client got: frame type %u, flags 0x%x, stream %d, %zu bytes\n", f.type, f.flags,
                 f.stream, f.payload.size());
      FUZZ_CHECK(f.payload.size() <= kMaxFrameSize);
      FUZZ_CHECK(f.stream >= 0);  // the reserved bit is clear
      if (first) FUZZ_CHECK(f.type == NGHTTP2_SETTINGS && (f.flags & NGHTTP2_FLAG_ACK) == 0);
      first = false;
      if (continuing_ != 0 && f.type != NGHTTP2_CONTINUATION) {
        FUZZ_FAIL("a header block was interrupted by another frame");
      }
      frame(f);
      return true;
    });
    // A frame cut at the end is allowed: a fatal error closes the connection at once.
  }

 private:
  struct Stream {
    bool final_seen = false;
    bool ended = false;
    bool reset = false;
    std::optional<uint64_t> content_length;
    uint64_t data = 0;
  };

  void frame(const Frame& f) {
    const int32_t id = f.stream;
    switch (f.type) {
      case NGHTTP2_DATA: {
        FUZZ_CHECK(id != 0 && (f.flags & NGHTTP2_FLAG_PADDED) == 0);
        Stream& s = streams_[id];
        FUZZ_CHECK(s.final_seen && !s.ended && !s.reset);
        s.data += f.payload.size();
        if (f.flags & NGHTTP2_FLAG_END_STREAM) ended(id, s);
        return;
      }
      case NGHTTP2_HEADERS: {
        FUZZ_CHECK(id != 0 && id % 2 == 1);
        FUZZ_CHECK((f.flags & (NGHTTP2_FLAG_PADDED | NGHTTP2_FLAG_PRIORITY)) == 0);
        const Stream& s = streams_[id];
        FUZZ_CHECK(!s.ended && !s.reset);
        block_.assign(f.payload);
        block_stream_ = id;
        block_end_stream_ = (f.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (f.flags & NGHTTP2_FLAG_END_HEADERS) {
          headerBlock();
        } else {
          continuing_ = id;
        }
        return;
      }
      case NGHTTP2_CONTINUATION:
        FUZZ_CHECK(continuing_ != 0 && id == continuing_);
        block_.append(f.payload);
        if (f.flags & NGHTTP2_FLAG_END_HEADERS) {
          continuing_ = 0;
          headerBlock();
        }
        return;
      case NGHTTP2_RST_STREAM:
        FUZZ_CHECK(id != 0 && f.payload.size() == 4);
        streams_[id].reset = true;
        return;
      case NGHTTP2_SETTINGS:
        FUZZ_CHECK(id == 0 && f.payload.size() % 6 == 0);
        FUZZ_CHECK((f.flags & NGHTTP2_FLAG_ACK) == 0 || f.payload.empty());
        return;
      case NGHTTP2_PING:
        // A server only answers pings.
        FUZZ_CHECK(id == 0 && f.payload.size() == 8 && (f.flags & NGHTTP2_FLAG_ACK) != 0);
        return;
      case NGHTTP2_GOAWAY:
        FUZZ_CHECK(id == 0 && f.payload.size() >= 8);
        return;
      case NGHTTP2_WINDOW_UPDATE:
        FUZZ_CHECK(f.payload.size() == 4);
        return;
      default:
        std::fprintf(stderr, "frame type %u from the server\n", f.type);
        FUZZ_FAIL("the server sent a frame it never sends (push, priority, unknown)");
    }
  }

  // The response is complete: as many DATA bytes as its content-length said, none for HEAD.
  void ended(int32_t id, Stream& s) {
    s.ended = true;
    const auto method = methods_.find(id);
    if (method == methods_.end()) return;  // not known here
    const bool head = method->second == "HEAD";
    if (head ? s.data == 0 : (!s.content_length || s.data == *s.content_length)) return;
    std::fprintf(stderr, "stream %d (%s): content-length %s, %llu DATA bytes\n", id,
                 escaped(method->second).c_str(),
                 s.content_length ? std::to_string(*s.content_length).c_str() : "none",
                 static_cast<unsigned long long>(s.data));
    FUZZ_FAIL("a response's DATA does not match its content-length");
  }

  void headerBlock() {
    FieldList fields;
    if (!decoder_.decode(block_, &fields)) FUZZ_FAIL("the server's header block does not decode");
    for (const auto& [name, value] : fields)
      FUZZ_TRACE("  %s: %s\n", escaped(name).c_str(), escaped(value).c_str());

    Stream& s = streams_[block_stream_];
    const bool pseudo_allowed = !s.final_seen;
    size_t request_ids = 0, correlation_ids = 0, lengths = 0;
    int status = 0;
    for (size_t i = 0; i < fields.size(); ++i) {
      const auto& [name, value] = fields[i];
      const bool ok = !name.empty() && !hasUpper(name) && validValue(value) &&
                      !h2::isConnectionSpecific(name, value) &&
                      (name.front() != ':' || (pseudo_allowed && i == 0 && name == ":status"));
      if (!ok) {
        std::fprintf(stderr, "stream %d, field %zu: %s: %s\n", block_stream_, i,
                     escaped(name).c_str(), escaped(value).c_str());
        FUZZ_FAIL("a field a client must refuse");
      }
      if (name == ":status") {
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), status);
        FUZZ_CHECK(ec == std::errc() && end == value.data() + value.size() && value.size() == 3);
        FUZZ_CHECK(status >= 100 && status <= 999);
      }
      request_ids += name == "x-request-id";
      correlation_ids += name == "x-correlation-id";
      if (name == "content-length") {
        ++lengths;
        uint64_t length = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
        FUZZ_CHECK(ec == std::errc() && end == value.data() + value.size());
        s.content_length = length;
      }
    }
    if (s.final_seen) {
      FUZZ_CHECK(block_end_stream_);  // trailers end the stream
      ended(block_stream_, s);
      return;
    }
    FUZZ_CHECK(status != 0);
    if (status < 200) {
      FUZZ_CHECK(!block_end_stream_ && status != 101);
      s.content_length.reset();
      return;
    }
    s.final_seen = true;
    if (request_ids != 1 || correlation_ids != 1 || lengths > 1) {
      std::fprintf(stderr, "stream %d: status %d, %zu request ids, %zu correlation ids\n",
                   block_stream_, status, request_ids, correlation_ids);
      FUZZ_FAIL("a response without exactly one of each id");
    }
    if (status == 204 || status == 304) s.content_length = 0;  // no body, whatever it says
    if (block_end_stream_) ended(block_stream_, s);
  }

  const std::map<int32_t, std::string> methods_;
  BlockDecoder decoder_;
  std::map<int32_t, Stream> streams_;
  std::string block_;
  int32_t block_stream_ = 0;
  bool block_end_stream_ = false;
  int32_t continuing_ = 0;
};

// ---- the client -----------------------------------------------------------------------------

struct Options {
  size_t listener = 0;
  bool trusted = false;
  bool all_at_once = false;  // else in pieces of 1 to 64 bytes, a loop turn between them
  bool small_buffers = false;
  bool reads_late = false;  // reads nothing until the proxy is quiet
  // Shuts down its sending side after the input: the proxy closes the connection then (an
  // HTTP/2 client does not half-close), so answers that come later are never sent.
  bool half_close = false;
  // Then the worker drains (GOAWAY, idle connections closed), and maybe gives up on what is
  // still in flight (503 draining, responses cut), as a drain timeout does.
  bool drain = false;
  bool abandon = false;
};

Options choose(Choices& c) {
  Options o;
  o.listener = c.oneIn(4) ? 1 : 0;
  o.trusted = c.oneIn(2);
  o.all_at_once = c.oneIn(3);
  o.small_buffers = c.oneIn(4);
  o.reads_late = c.oneIn(6);
  o.half_close = c.oneIn(8);
  o.drain = c.oneIn(6);
  o.abandon = o.drain && c.oneIn(2);
  return o;
}

void turn(Worker& worker) {
  worker.loop().post([] {});  // something to wake for: the turn never blocks
  worker.loop().runOnce();
}

class Client {
 public:
  Client(int fd, std::string_view input, const Options& options, Choices& choices)
      : fd_(fd),
        input_(input),
        options_(options),
        choices_(choices),
        reading_(!options.reads_late) {}
  ~Client() { closeFd(); }

  const std::string& received() const { return received_; }
  void startReading() { reading_ = true; }
  bool reading() const { return reading_; }

  // Sends the next piece of the input, or shuts down the sending side after the last one.
  bool send() {
    if (fd_ < 0) return false;
    bool moved = false;
    if (sent_ < input_.size()) {
      const size_t piece = options_.all_at_once ? input_.size() - sent_ : 1 + choices_.below(64);
      const size_t n = std::min(piece, input_.size() - sent_);
      const ssize_t r = ::send(fd_, input_.data() + sent_, n, MSG_NOSIGNAL);
      if (r > 0) {
        sent_ += static_cast<size_t>(r);
        moved = true;
      } else if (r < 0 && errno != EAGAIN) {
        sent_ = input_.size();  // the proxy closed: the rest is never read
      }
    } else if (options_.half_close && !shut_) {
      ::shutdown(fd_, SHUT_WR);
      shut_ = true;
      moved = true;
    }
    return moved;
  }

  bool readAvailable() {
    bool moved = false;
    char buf[16384];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      received_.append(buf, static_cast<size_t>(n));
      moved = true;
    }
    return moved;
  }

  void closeFd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  std::string_view input_;
  const Options& options_;
  Choices& choices_;
  size_t sent_ = 0;
  std::string received_;
  bool reading_;
  bool shut_ = false;
};

// A fresh worker with the config installed, as the server starts one (its loop is turned here).
std::unique_ptr<Worker> startWorker(std::vector<std::shared_ptr<SharedLimit>>& limits) {
  World& w = world();
  auto worker = std::make_unique<Worker>(0, w.services);
  auto runtime = std::make_shared<ConfigRuntime>();
  runtime->config = w.config;
  runtime->context_filter = w.context_filter;
  runtime->listener_tls.resize(w.config->listeners.size());
  for (const UpstreamConfig& u : w.config->upstreams) {
    runtime->upstream_addresses[u.name] = {w.upstream_address};
    UpstreamSharedLimits shared;
    shared.requests = std::make_shared<SharedLimit>(std::vector<EventLoop*>{&worker->loop()});
    shared.connections = std::make_shared<SharedLimit>(std::vector<EventLoop*>{&worker->loop()});
    shared.requests->setCapacity(u.limits.max_concurrent_requests);
    shared.connections->setCapacity(uint64_t{u.pool.size} + u.pool.max_overflow);
    limits.push_back(shared.requests);
    limits.push_back(shared.connections);
    runtime->upstream_limits[u.name] = shared;
  }
  worker->installConfig(runtime);
  worker->loop().runOnce();  // the posted snapshot
  FUZZ_CHECK(worker->snapshot() != nullptr);
  return worker;
}

}  // namespace
}  // namespace viscount::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace viscount;
  using namespace viscount::fuzz;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Choices choices(data, size);
  const Options options = choose(choices);
  FUZZ_TRACE(
      "listener %zu, %s, %s, %s%s%s%s%s\n", options.listener,
      options.trusted ? "trusted" : "untrusted", options.all_at_once ? "all at once" : "in pieces",
      options.small_buffers ? "small buffers, " : "", options.reads_late ? "reads late, " : "",
      options.half_close ? "half-closes" : "stays open", options.drain ? ", drain" : "",
      options.abandon ? ", abandon" : "");

  std::vector<std::shared_ptr<SharedLimit>> limits;
  std::unique_ptr<Worker> worker = startWorker(limits);

  int pair[2];
  FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) == 0);
  if (options.small_buffers) {
    const int small = 4096;
    ::setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(pair[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(40000);
  peer.sin_addr.s_addr = htonl(options.trusted ? 0x7f000001 : 0xc0000207);  // 127.0.0.1, 192.0.2.7
  worker->serveConnection(pair[0], options.listener, reinterpret_cast<const sockaddr*>(&peer));

  Client client(pair[1], input, options, choices);
  Upstream upstream(choices, options.trusted);

  // The client sends its bytes and reads the answers until nothing moves any more. One that
  // reads late starts reading only then.
  auto untilQuiet = [&] {
    size_t quiet = 0;
    for (size_t i = 0; i < kMaxTurns; ++i) {
      bool moved = client.send();
      turn(*worker);
      moved = upstream.step() || moved;
      if (client.reading()) moved = client.readAvailable() || moved;
      quiet = moved ? 0 : quiet + 1;
      if (quiet < kQuietTurns) continue;
      if (client.reading()) return;
      client.startReading();
      quiet = 0;
    }
  };
  untilQuiet();
  if (options.drain) {
    worker->beginDrain([] {});
    untilQuiet();
    if (options.abandon) {
      worker->abandonInFlight();
      untilQuiet();
    }
  }

  // The client leaves: the connection must close, every request end and give back its slot, and
  // every upstream connection close once the idle ones are let go.
  client.readAvailable();
  client.closeFd();
  for (size_t i = 0; i < kCloseTurns && worker->connectionCount() > 0; ++i) {
    turn(*worker);
    upstream.step();
  }
  FUZZ_CHECK(worker->connectionCount() == 0);
  // A connect started for a request that has gone since completes, and its connection then
  // waits idle: let the idle ones go until none is left.
  auto poolsEmpty = [&] {
    for (const auto& u : worker->snapshot()->upstreams) {
      u->pool->closeIdle();
      if (u->pool->idleCount() + u->pool->busyCount() + u->pool->connectingCount() > 0)
        return false;
    }
    return true;
  };
  for (size_t i = 0; i < kCloseTurns && !(poolsEmpty() && upstream.allClosed()); ++i) {
    turn(*worker);
    upstream.step();
  }
  for (size_t i = 0; i < kQuietTurns; ++i)
    turn(*worker);
  for (size_t i = 0; i < limits.size(); ++i) {
    if (limits[i]->inUse() != 0) {
      std::fprintf(stderr, "upstream %s: %llu %s still held\n",
                   world().config->upstreams[i / 2].name.c_str(),
                   static_cast<unsigned long long>(limits[i]->inUse()),
                   i % 2 == 0 ? "request slots" : "connections");
      FUZZ_FAIL("a request or an upstream connection outlived its client");
    }
  }
  FUZZ_CHECK(upstream.allClosed());

  if (input.starts_with(kPreface)) {
    ClientView view(requestMethods(input));
    view.read(client.received());
  }
  worker.reset();
  return 0;
}
