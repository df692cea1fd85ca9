#pragma once

// A raw HTTP/1.1 test client: exact bytes out, a small independent response parser in. Used
// for framing attacks, pipelining and keep-alive checks where a library client would hide or
// "fix" what goes on the wire.

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/test_upstream.h"

namespace viscount::test {

struct HttpResponse {
  int status = 0;
  Headers headers;
  std::string body;
  bool chunked = false;
  Headers trailers;
  // 1xx responses that arrived before this one (readResponse), in order: status and headers.
  std::vector<std::pair<int, Headers>> interim;

  std::string header(const std::string& name) const { return headerValue(headers, name); }
  size_t count(const std::string& name) const { return headerCount(headers, name); }
};

class RawConnection {
 public:
  explicit RawConnection(uint16_t port);
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  ~RawConnection();

  bool send(std::string_view bytes);
  // Reads one response. nullopt on EOF/timeout/garbage. `head_request`: no body follows.
  std::optional<HttpResponse> readResponse(
      bool head_request = false, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Like readResponse, but a 1xx interim response is returned as soon as its head is read.
  std::optional<HttpResponse> readResponseOrInterim(
      bool head_request = false, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // True when the server closed the connection (EOF or reset) within the timeout.
  bool waitClosed(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Everything until close or timeout.
  std::string readAll(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  void close();
  int fd() const { return fd_; }

 private:
  std::optional<HttpResponse> read(bool head_request, std::chrono::milliseconds timeout,
                                   bool return_interim);
  bool fill(size_t want, std::chrono::steady_clock::time_point deadline);
  bool line(std::string& out, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
};

// One request on a fresh connection.
std::optional<HttpResponse> httpRequest(uint16_t port, const std::string& method,
                                        const std::string& path, const Headers& headers = {},
                                        const std::string& body = "");

// The value of one sample in a Prometheus exposition, by its exact series text (name and
// labels, e.g. `viscount_upstream_connections{upstream="app",state="idle"}`); -1 if absent.
double metricSample(const std::string& exposition, const std::string& series);
// GET /metrics on the admin port, then metricSample; -1 if absent or not answered.
double scrapeMetric(uint16_t admin_port, const std::string& series);

std::string buildRequest(const std::string& method, const std::string& path,
                         const Headers& headers = {}, const std::string& body = "",
                         bool add_host = true);

}  // namespace viscount::test
