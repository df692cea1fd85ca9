// Fuzzes what a client's bytes reach on a listener that speaks HTTP/2. The input is the byte
// stream of one client connection (the h2c connection preface, then frames). It runs through
// viscount itself, in this process and on this thread: a Worker (not started: its loop is turned
// here) serves one end of a socketpair as it serves an accepted socket, so the bytes meet
// Http1ServerConnection's preface check, then Http2ServerConnection with its nghttp2 session
// (the flood-defence options, header limits counted decoded, pseudo-header and content-length
// checks, trailers), Exchange with the request filters, the upstream pool, and
// Http1ClientCodec. The upstream is played here too, on a unix socket the pool connects to
// (http2_server_upstream.h): it parses every request with Http1Parser and answers in a way drawn
// from the input's hash, so the response paths of the HTTP/2 codec run as well. What the client
// reads is decoded and checked by http2_server_frames.h.
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
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config_loader.h"
#include "proxy/server/worker.h"
#include "telemetry/access_log.h"
#include "telemetry/event_log.h"
#include "telemetry/metrics.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/http2_server_frames.h"
#include "tests/fuzz/http2_server_upstream.h"

namespace viscount::fuzz {
namespace {

constexpr size_t kMaxTurns = 4000;   // loop turns while the client sends and reads
constexpr size_t kQuietTurns = 3;    // turns without any I/O that end a phase
constexpr size_t kCloseTurns = 200;  // turns the proxy gets to clean up after the client left

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

World& world() {
  static World* w = new World();  // never destroyed: no teardown order to think about
  return *w;
}

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
  Upstream upstream(world().upstream_listener, choices, options.trusted);

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
