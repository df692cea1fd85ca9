#pragma once

// A real HTTP/1.1 upstream for integration tests: a listening socket on 127.0.0.1:0 and a thread
// per connection with blocking I/O and its own small parser (independent of the proxy's). It
// records every request it receives and answers through a handler, which can also misbehave.

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
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
  bool close = false;                  // add "connection: close" and close after the reply
  std::chrono::milliseconds delay{0};  // wait before answering
  std::string raw;                     // if set: send these bytes verbatim instead of a reply
  bool close_without_reply = false;
  bool hang = false;        // never answer (until the upstream stops)
  bool no_framing = false;  // no content-length, no chunking: body delimited by close
};

class TestUpstream {
 public:
  using Handler = std::function<UpstreamReply(const ReceivedRequest&)>;

  explicit TestUpstream(Handler handler = {});
  TestUpstream(const TestUpstream&) = delete;
  TestUpstream& operator=(const TestUpstream&) = delete;
  ~TestUpstream();

  uint16_t port() const { return port_; }
  std::vector<ReceivedRequest> requests() const;
  size_t requestCount() const;
  int connectionsAccepted() const { return connections_.load(); }
  void stop();

  // The default handler: 200 with a JSON body naming the context headers it saw.
  static UpstreamReply echoContext(const ReceivedRequest& request);

 private:
  void acceptLoop();
  void serve(int fd, int id);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  Handler handler_;  // set once, before any connection
  std::vector<ReceivedRequest> requests_;
  std::vector<int> open_fds_;
  std::thread accept_thread_;
  std::vector<std::thread> threads_;
};

}  // namespace viscount::test
