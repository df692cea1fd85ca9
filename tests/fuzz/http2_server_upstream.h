#pragma once

// The upstream the http2_server fuzz target plays, on a unix socket the pool connects to: it
// parses every request with Http1Parser, checks what the proxy forwarded, and answers in a way
// drawn from the input's hash (lengths, chunked with trailers, 1xx, 204/304, early, cut,
// dropped, garbage, silent, close-delimited, hostile headers).

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "filters/header_sanitizer.h"
#include "filters/trace_context.h"
#include "proxy/http/ascii.h"
#include "proxy/http/grpc_wire.h"
#include "proxy/http1/http1_parser.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/http1_messages.h"

namespace viscount::fuzz {

// The upstream's budget: a forwarded deadline header never says more.
inline constexpr uint64_t kUpstreamBudgetMs = 15000;

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

inline Plan choosePlan(Choices& c) {
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

inline std::string bodyBytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + i % 26);
  return s;
}

// The response head's fields beyond framing.
inline std::string fieldsOf(const Plan& p) {
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
    // A gRPC request carries exactly one grpc-timeout, viscount's, within the same budget.
    if (isGrpcContentType(value("content-type"))) {
      FUZZ_CHECK(count("grpc-timeout") == 1);
      const auto timeout = parseGrpcTimeout(value("grpc-timeout"));
      FUZZ_CHECK(timeout.has_value() && static_cast<uint64_t>(timeout->count()) <= ms);
    }
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
          out_ +=
              "0\r\nx-checksum: 1234\r\nConnection: close\r\nx-trailer-2: two\r\n"
              "grpc-status: 7\r\ngrpc-message: no%20way%zz%\r\n\r\n";
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
  // `listener`: the socket the pool connects to.
  Upstream(int listener, Choices& choices, bool trusted_client)
      : listener_(listener), choices_(choices), trusted_client_(trusted_client) {}

  bool step() {
    bool moved = false;
    for (;;) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
  const int listener_;
  Choices& choices_;
  const bool trusted_client_;
  std::vector<std::unique_ptr<UpstreamPeer>> peers_;
};

}  // namespace viscount::fuzz
