#pragma once

// A real HTTP/1.1 upstream for integration tests: a listening socket on 127.0.0.1:0 and a thread
// per connection with blocking I/O and its own small parser (independent of the proxy's). It
// records every request it receives and answers through a handler, which can also misbehave.

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace viscount::test {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive lookups over a header list.
std::string headerValue(const Headers& headers, const std::string& name);
size_t headerCount(const Headers& headers, const std::string& name);

// Small helpers shared by the harness and the tests.
std::string lower(std::string s);
std::string hex(size_t n);  // lowercase hex, as in a chunk-size line
// Sends all of `data` (MSG_NOSIGNAL); false on error or a closed peer.
bool sendAll(int fd, std::string_view data);
// Makes the next close() of `fd` send a TCP RST instead of a FIN (SO_LINGER with timeout 0).
void resetOnClose(int fd);

// Polls until `pred` holds or `timeout` passes.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::string version;
  Headers headers;
  std::string body;
  bool chunked = false;
  Headers trailers;
  int connection_id = 0;

  std::string header(const std::string& name) const { return headerValue(headers, name); }
  size_t count(const std::string& name) const { return headerCount(headers, name); }
};

struct UpstreamReply {
  int status = 200;
  Headers headers;
  std::string body;
  bool chunked = false;  // send the body chunked instead of with content-length
  size_t chunk_size = 16384;
  bool close = false;                        // add "connection: close" and close after the reply
  std::chrono::milliseconds close_delay{0};  // with `close`: wait this long before closing
  bool reset = false;                        // with `close`: a TCP RST (SO_LINGER 0), not a FIN
  std::chrono::milliseconds delay{0};        // wait before answering
  std::string raw;                           // if set: send these bytes verbatim instead of a reply
  bool close_without_reply = false;
  bool hang = false;        // never answer (until the upstream stops)
  bool no_framing = false;  // no content-length, no chunking: body delimited by close
};

// One connection as the upstream saw it.
struct UpstreamConnectionInfo {
  int id = 0;
  std::chrono::steady_clock::time_point accepted;
  std::optional<std::chrono::steady_clock::time_point> last_reply;  // last reply fully sent
  std::optional<std::chrono::steady_clock::time_point> closed;
  bool closed_by_peer = false;    // the proxy closed it (EOF or reset between requests)
  bool closed_when_idle = false;  // this side closed it after setIdleClose's delay
  int replies = 0;
};

class TestUpstream {
 public:
  using Handler = std::function<UpstreamReply(const ReceivedRequest&)>;
  using Clock = std::chrono::steady_clock;

  explicit TestUpstream(Handler handler = {});
  TestUpstream(const TestUpstream&) = delete;
  TestUpstream& operator=(const TestUpstream&) = delete;
  ~TestUpstream();

  uint16_t port() const { return port_; }
  std::vector<ReceivedRequest> requests() const;
  size_t requestCount() const;
  int connectionsAccepted() const { return connections_.load(); }
  // Connections open right now (as far as the serving threads know), and the most that were
  // ever open at once (counted at each accept: those the peer had not closed).
  int openConnections() const { return open_.load(); }
  int maxOpenConnections() const { return max_open_.load(); }
  // Connections this side closed because they sat idle for the setIdleClose delay.
  int idleCloses() const { return idle_closes_.load(); }
  std::vector<UpstreamConnectionInfo> connections() const;
  // Like an upstream with a keep-alive timeout: a connection that waits this long for its next
  // request is closed silently (no response). Zero (the default) keeps connections forever. Call
  // it before any traffic.
  void setIdleClose(std::chrono::milliseconds idle) { idle_close_ms_ = idle.count(); }
  void stop();

  // The default handler: 200 with a JSON body naming the context headers it saw.
  static UpstreamReply echoContext(const ReceivedRequest& request);

 private:
  void acceptLoop();
  void serve(int fd, int id);
  void connectionEvent(int id, bool reply_sent, bool closed = false, bool by_peer = false,
                       bool idle = false);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> open_{0};
  std::atomic<int> max_open_{0};
  std::atomic<int> idle_closes_{0};
  std::atomic<int64_t> idle_close_ms_{0};
  mutable std::mutex mutex_;
  Handler handler_;  // set once, before any connection
  std::vector<ReceivedRequest> requests_;
  std::vector<UpstreamConnectionInfo> connection_log_;  // index: id - 1
  std::vector<int> open_fds_;
  std::thread accept_thread_;
  std::vector<std::thread> threads_;
};

// A port on 127.0.0.1 where a TCP connect neither completes nor fails, for connect timeouts: a
// listening socket with backlog 0 whose accept queue is filled by connections that are never
// accepted, so the kernel drops every further SYN. The constructor checks that a connect really
// hangs and throws if it does not.
// A port that refuses connections (bound, never listening) and stays reserved while the object
// lives: unlike the port of a stopped server, no test running alongside can be handed it.
class RefusingPort {
 public:
  RefusingPort();
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  ~RefusingPort();

  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

class HangingConnectPort {
 public:
  HangingConnectPort();
  HangingConnectPort(const HangingConnectPort&) = delete;
  HangingConnectPort& operator=(const HangingConnectPort&) = delete;
  ~HangingConnectPort();

  uint16_t port() const { return port_; }

 private:
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::vector<int> fillers_;
};

}  // namespace viscount::test
