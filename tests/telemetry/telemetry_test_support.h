#pragma once

// Shared fixtures for the telemetry tests: a realistic RequestContext and temporary files.

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "proxy/http/request_context.h"

namespace viscount::testing {

// 2026-11-23T10:00:00.123Z
inline WallTime fixedWallTime() {
  using namespace std::chrono;
  return sys_days{year{2026} / November / 23} + hours{10} + milliseconds{123};
}

inline RequestContext typicalRequest() {
  RequestContext ctx;
  ctx.request_id = "0b6f3c1e-6d1b-4c27-9a8e-3f0c2d4b5a69";
  ctx.correlation_id = "corr-42";
  ctx.user_id = "alice@example.com";
  ctx.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  ctx.span_id = "00f067aa0ba902b7";
  ctx.method = "GET";
  ctx.path = "/api/v1/orders?limit=20";
  ctx.protocol = Protocol::kHttp11;
  ctx.client_address = "127.0.0.1:53712";
  ctx.upstream = "app";
  ctx.upstream_address = "127.0.0.1:8000";
  ctx.attempts = 1;
  ctx.start_wall = fixedWallTime();
  ctx.start = MonoTime{} + std::chrono::seconds(100);
  ctx.upstream_start = ctx.start + std::chrono::microseconds(150);
  ctx.upstream_end = ctx.start + std::chrono::microseconds(1950);
  ctx.end = ctx.start + std::chrono::microseconds(2345);
  ctx.status = 200;
  ctx.bytes_in = 0;
  ctx.bytes_out = 512;
  return ctx;
}

// A file under /tmp, removed when the object goes away.
class TempPath {
 public:
  TempPath() {
    char name[] = "/tmp/viscount-telemetry-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd >= 0) ::close(fd);
    path_ = name;
  }
  ~TempPath() { ::unlink(path_.c_str()); }
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Lines without their '\n'. A last fragment without '\n' is returned too, so a test can see it.
inline std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace viscount::testing
