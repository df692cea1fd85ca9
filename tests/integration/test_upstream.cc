#include "tests/integration/test_upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace viscount::test {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string hex(size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%zx", n);
  return buf;
}

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void resetOnClose(int fd) {
  const linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

namespace {

// Reads until `buf` holds at least `want` bytes; false on EOF/error.
bool fill(int fd, std::string& buf, size_t want) {
  char tmp[65536];
  while (buf.size() < want) {
    ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
  }
  return true;
}

bool readLine(int fd, std::string& buf, size_t& pos, std::string& line) {
  for (;;) {
    size_t eol = buf.find("\r\n", pos);
    if (eol != std::string::npos) {
      line = buf.substr(pos, eol - pos);
      pos = eol + 2;
      return true;
    }
    if (!fill(fd, buf, buf.size() + 1)) return false;
  }
}

}  // namespace

std::string headerValue(const Headers& headers, const std::string& name) {
  const std::string n = lower(name);
  for (const auto& [k, v] : headers) {
    if (lower(k) == n) return v;
  }
  return {};
}

size_t headerCount(const Headers& headers, const std::string& name) {
  const std::string n = lower(name);
  size_t c = 0;
  for (const auto& [k, v] : headers)
    c += lower(k) == n ? 1 : 0;
  return c;
}

TestUpstream::TestUpstream(Handler handler) : handler_(std::move(handler)) {
  if (!handler_) handler_ = &TestUpstream::echoContext;
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 1024) != 0) {
    throw std::runtime_error("test upstream: cannot listen");
  }
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { acceptLoop(); });
}

TestUpstream::~TestUpstream() {
  stop();
}

void TestUpstream::stop() {
  if (stopping_.exchange(true)) return;
  ::shutdown(listen_fd_, SHUT_RDWR);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int fd : open_fds_)
      ::shutdown(fd, SHUT_RDWR);
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  ::close(listen_fd_);
}

std::vector<ReceivedRequest> TestUpstream::requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

size_t TestUpstream::requestCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_.size();
}

void TestUpstream::acceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const int id = ++connections_;
    ++open_;
    std::lock_guard<std::mutex> lock(mutex_);
    // Open at once: this one and every other the peer has not closed. A serving thread may not
    // have read a close yet, so ask the kernel rather than count exits; the peak is always
    // reached at an accept.
    int open_now = 1;
    for (int other : open_fds_) {
      pollfd hup{other, POLLRDHUP, 0};
      if (::poll(&hup, 1, 0) == 0) ++open_now;
    }
    if (open_now > max_open_) max_open_ = open_now;
    UpstreamConnectionInfo info;
    info.id = id;
    info.accepted = Clock::now();
    connection_log_.push_back(info);  // ids are handed out here, in order
    open_fds_.push_back(fd);
    threads_.emplace_back([this, fd, id] { serve(fd, id); });
  }
}

void TestUpstream::serve(int fd, int id) {
  std::string buf;
  size_t pos = 0;
  bool by_peer = false;
  bool idle = false;
  for (;;) {
    // Between requests: an upstream keep-alive timeout closes a connection that stays idle.
    const int64_t idle_ms = idle_close_ms_.load();
    if (idle_ms > 0 && pos >= buf.size()) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(idle_ms)) == 0) {
        idle = true;
        goto done;
      }
    }
    // Request line (skipping empty lines between requests).
    std::string line;
    do {
      if (!readLine(fd, buf, pos, line)) {
        by_peer = buf.size() == pos && !stopping_;
        goto done;
      }
    } while (line.empty());
    ReceivedRequest req;
    req.connection_id = id;
    {
      size_t a = line.find(' ');
      size_t b = line.rfind(' ');
      if (a == std::string::npos || a == b) goto done;
      req.method = line.substr(0, a);
      req.target = line.substr(a + 1, b - a - 1);
      req.version = line.substr(b + 1);
    }
    for (;;) {
      if (!readLine(fd, buf, pos, line)) goto done;
      if (line.empty()) break;
      size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.erase(0, 1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.pop_back();
      req.headers.emplace_back(name, value);
    }
    if (lower(req.header("transfer-encoding")) == "chunked") {
      req.chunked = true;
      for (;;) {
        if (!readLine(fd, buf, pos, line)) goto done;
        const size_t size = std::stoul(line.substr(0, line.find(';')), nullptr, 16);
        if (size == 0) {
          for (;;) {
            if (!readLine(fd, buf, pos, line)) goto done;
            if (line.empty()) break;
            size_t colon = line.find(':');
            std::string v = line.substr(colon + 1);
            while (!v.empty() && v.front() == ' ')
              v.erase(0, 1);
            req.trailers.emplace_back(line.substr(0, colon), v);
          }
          break;
        }
        if (!fill(fd, buf, pos + size + 2)) goto done;
        req.body.append(buf, pos, size);
        pos += size + 2;
      }
    } else if (!req.header("content-length").empty()) {
      const size_t size = std::stoul(req.header("content-length"));
      if (!fill(fd, buf, pos + size)) goto done;
      req.body = buf.substr(pos, size);
      pos += size;
    }
    buf.erase(0, pos);
    pos = 0;

    {
      std::lock_guard<std::mutex> lock(mutex_);
      requests_.push_back(req);
    }
    UpstreamReply reply = handler_(req);
    if (reply.delay.count() > 0) std::this_thread::sleep_for(reply.delay);
    if (reply.hang) {
      while (!stopping_) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) > 0) {
          char c;
          if (::recv(fd, &c, 1, MSG_PEEK) <= 0) goto done;
        }
      }
      goto done;
    }
    if (reply.close_without_reply) goto done;
    if (!reply.raw.empty()) {
      sendAll(fd, reply.raw);
      connectionEvent(id, true);
      if (reply.close) {
        std::this_thread::sleep_for(reply.close_delay);
        if (reply.reset) resetOnClose(fd);
        goto done;
      }
      continue;
    }
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n";
    for (const auto& [k, v] : reply.headers)
      out += k + ": " + v + "\r\n";
    const bool bodiless = req.method == "HEAD" || reply.status == 204 || reply.status == 304;
    if (reply.chunked) {
      out += "transfer-encoding: chunked\r\n";
    } else if (!reply.no_framing) {
      out += "content-length: " + std::to_string(reply.body.size()) + "\r\n";
    }
    if (reply.close || reply.no_framing) out += "connection: close\r\n";
    out += "\r\n";
    if (!bodiless) {
      if (reply.chunked) {
        for (size_t off = 0; off < reply.body.size(); off += reply.chunk_size) {
          const size_t n = std::min(reply.chunk_size, reply.body.size() - off);
          char hex[32];
          std::snprintf(hex, sizeof(hex), "%zx\r\n", n);
          out += hex;
          out.append(reply.body, off, n);
          out += "\r\n";
          if (out.size() > (1 << 20)) {
            if (!sendAll(fd, out)) goto done;
            out.clear();
          }
        }
        out += "0\r\n\r\n";
      } else {
        out += reply.body;
      }
    }
    if (!sendAll(fd, out)) goto done;
    connectionEvent(id, true);
    if (reply.close || reply.no_framing) {
      std::this_thread::sleep_for(reply.close_delay);
      if (reply.reset) resetOnClose(fd);
      goto done;
    }
  }
done:
  if (idle) ++idle_closes_;
  connectionEvent(id, false, true, by_peer, idle);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
  }
  --open_;
  ::close(fd);
}

void TestUpstream::connectionEvent(int id, bool reply_sent, bool closed, bool by_peer, bool idle) {
  std::lock_guard<std::mutex> lock(mutex_);
  UpstreamConnectionInfo& c = connection_log_[static_cast<size_t>(id - 1)];
  const auto now = Clock::now();
  if (reply_sent) {
    c.last_reply = now;
    ++c.replies;
  }
  if (closed) {
    c.closed = now;
    c.closed_by_peer = by_peer;
    c.closed_when_idle = idle;
  }
}

std::vector<UpstreamConnectionInfo> TestUpstream::connections() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return connection_log_;
}

UpstreamReply TestUpstream::echoContext(const ReceivedRequest& req) {
  nlohmann::json j;
  j["method"] = req.method;
  j["target"] = req.target;
  j["request_id"] = req.header("x-request-id");
  j["request_id_count"] = req.count("x-request-id");
  j["correlation_id"] = req.header("x-correlation-id");
  j["correlation_id_count"] = req.count("x-correlation-id");
  j["user_id"] = req.header("x-user-id");
  j["user_id_count"] = req.count("x-user-id");
  j["traceparent"] = req.header("traceparent");
  j["traceparent_count"] = req.count("traceparent");
  j["tracestate"] = req.header("tracestate");
  j["body_size"] = req.body.size();
  UpstreamReply r;
  r.headers.emplace_back("content-type", "application/json");
  r.body = j.dump();
  return r;
}

RefusingPort::RefusingPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    throw std::runtime_error("refusing port: cannot bind");
  }
  socklen_t len = sizeof(addr);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
}

RefusingPort::~RefusingPort() {
  ::close(fd_);
}

HangingConnectPort::HangingConnectPort() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 0) != 0) {
    throw std::runtime_error("hanging port: cannot listen");
  }
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  // Connect until one does not complete: the ones that did fill the accept queue (one with
  // backlog 0 on Linux) and stay open, unaccepted, for as long as this object lives.
  for (int i = 0; i < 8; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    if (rc != 0 && errno != EINPROGRESS) {
      ::close(fd);
      break;
    }
    pollfd p{fd, POLLOUT, 0};
    if (rc != 0 && ::poll(&p, 1, 100) == 0) {
      ::close(fd);  // this one hangs: so will the next
      return;
    }
    fillers_.push_back(fd);
  }
  for (int fd : fillers_)
    ::close(fd);
  ::close(listen_fd_);
  throw std::runtime_error("hanging port: connects to a full accept queue still complete");
}

HangingConnectPort::~HangingConnectPort() {
  for (int fd : fillers_)
    ::close(fd);
  ::close(listen_fd_);
}

}  // namespace viscount::test
