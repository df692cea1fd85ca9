#include "tests/integration/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>
#include <stdexcept>

namespace viscount::test {

RawConnection::RawConnection(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    throw std::runtime_error("test client: cannot connect to port " + std::to_string(port));
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

RawConnection::~RawConnection() {
  close();
}

void RawConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool RawConnection::fill(size_t want, std::chrono::steady_clock::time_point deadline) {
  char tmp[65536];
  while (buf_.size() < want) {
    if (eof_) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
  }
  return true;
}

bool RawConnection::line(std::string& out, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    size_t eol = buf_.find("\r\n", pos_);
    if (eol != std::string::npos) {
      out = buf_.substr(pos_, eol - pos_);
      pos_ = eol + 2;
      return true;
    }
    if (!fill(buf_.size() + 1, deadline)) return false;
  }
}

std::optional<HttpResponse> RawConnection::readResponse(bool head_request,
                                                        std::chrono::milliseconds timeout) {
  return read(head_request, timeout, false);
}

std::optional<HttpResponse> RawConnection::readResponseOrInterim(
    bool head_request, std::chrono::milliseconds timeout) {
  return read(head_request, timeout, true);
}

std::optional<HttpResponse> RawConnection::read(bool head_request,
                                                std::chrono::milliseconds timeout,
                                                bool return_interim) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::pair<int, Headers>> interim;
  for (;;) {
    HttpResponse r;
    std::string l;
    if (!line(l, deadline)) return std::nullopt;
    if (l.rfind("HTTP/1.", 0) != 0 || l.size() < 12) return std::nullopt;
    r.status = std::stoi(l.substr(9, 3));
    for (;;) {
      if (!line(l, deadline)) return std::nullopt;
      if (l.empty()) break;
      size_t colon = l.find(':');
      if (colon == std::string::npos) return std::nullopt;
      std::string v = l.substr(colon + 1);
      while (!v.empty() && v.front() == ' ')
        v.erase(0, 1);
      r.headers.emplace_back(l.substr(0, colon), v);
    }
    if (r.status >= 100 && r.status < 200) {
      buf_.erase(0, pos_);
      pos_ = 0;
      if (return_interim) return r;
      interim.emplace_back(r.status, std::move(r.headers));
      continue;  // skip interim responses
    }
    r.interim = std::move(interim);
    const bool bodiless = head_request || r.status == 204 || r.status == 304;
    if (!bodiless) {
      if (lower(r.header("transfer-encoding")) == "chunked") {
        r.chunked = true;
        for (;;) {
          if (!line(l, deadline)) return std::nullopt;
          const size_t size = std::stoul(l, nullptr, 16);
          if (size == 0) {
            for (;;) {
              if (!line(l, deadline)) return std::nullopt;
              if (l.empty()) break;
              size_t colon = l.find(':');
              std::string v = l.substr(colon + 1);
              while (!v.empty() && v.front() == ' ')
                v.erase(0, 1);
              r.trailers.emplace_back(l.substr(0, colon), v);
            }
            break;
          }
          if (!fill(pos_ + size + 2, deadline)) return std::nullopt;
          r.body.append(buf_, pos_, size);
          pos_ += size + 2;
        }
      } else if (!r.header("content-length").empty()) {
        const size_t size = std::stoul(r.header("content-length"));
        if (!fill(pos_ + size, deadline)) return std::nullopt;
        r.body = buf_.substr(pos_, size);
        pos_ += size;
      } else {
        while (fill(buf_.size() + 1, deadline)) {
        }
        r.body = buf_.substr(pos_);
        pos_ = buf_.size();
      }
    }
    buf_.erase(0, pos_);
    pos_ = 0;
    return r;
  }
}

bool RawConnection::waitClosed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (fill(buf_.size() + 1, deadline)) {
  }
  return eof_;
}

std::string RawConnection::readAll(std::chrono::milliseconds timeout) {
  waitClosed(timeout);
  std::string out = buf_.substr(pos_);
  buf_.clear();
  pos_ = 0;
  return out;
}

std::string buildRequest(const std::string& method, const std::string& path, const Headers& headers,
                         const std::string& body, bool add_host) {
  std::string out = method + " " + path + " HTTP/1.1\r\n";
  if (add_host) out += "Host: test\r\n";
  for (const auto& [k, v] : headers)
    out += k + ": " + v + "\r\n";
  if (!body.empty() && headerCount(headers, "content-length") == 0 &&
      headerCount(headers, "transfer-encoding") == 0) {
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  out += "\r\n";
  out += body;
  return out;
}

std::optional<HttpResponse> httpRequest(uint16_t port, const std::string& method,
                                        const std::string& path, const Headers& headers,
                                        const std::string& body) {
  RawConnection c(port);
  if (!c.send(buildRequest(method, path, headers, body))) return std::nullopt;
  return c.readResponse(method == "HEAD");
}

double metricSample(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

double scrapeMetric(uint16_t admin_port, const std::string& series) {
  try {
    auto r = httpRequest(admin_port, "GET", "/metrics");
    return r && r->status == 200 ? metricSample(r->body, series) : -1;
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace viscount::test
