// The access log: exactly one valid JSON line per request on every path through the proxy
// (success, upstream errors, proxy errors, client gone), every contract field present with its
// JSON type, and hostile input escaped rather than breaking the line.

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"

namespace viscount::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

const std::regex kTs(R"(^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z$)");
const std::regex kIpPort(R"(^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d{1,5}$)");
const std::regex kHex32("^[0-9a-f]{32}$");
const std::regex kHex16("^[0-9a-f]{16}$");

const char* const kFields[] = {
    "ts",          "request_id",       "correlation_id", "user_id",   "trace_id",
    "span_id",     "method",           "path",           "protocol",  "status",
    "duration_ms", "upstream_ms",      "bytes_in",       "bytes_out", "client_address",
    "upstream",    "upstream_address", "error",          "attempts",
};

// Parses the contract's `ts` into a time point; nullopt if it is not in the contract's format.
std::optional<std::chrono::system_clock::time_point> parseTs(const std::string& ts) {
  std::smatch m;
  if (!std::regex_match(ts, m, kTs)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60) {
    return std::nullopt;
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm)) + milliseconds(std::stoi(m[7]));
}

// Every contract field, with its JSON type and shape.
void checkSchema(const json& l) {
  SCOPED_TRACE(l.dump());
  ASSERT_TRUE(l.is_object());
  for (const char* f : kFields)
    EXPECT_TRUE(l.contains(f)) << "missing field " << f;
  if (::testing::Test::HasFailure()) return;

  ASSERT_TRUE(l["ts"].is_string());
  auto ts = parseTs(l["ts"]);
  ASSERT_TRUE(ts) << "ts not RFC 3339 UTC with milliseconds: " << l["ts"];
  const auto now = std::chrono::system_clock::now();
  EXPECT_LE(*ts, now + std::chrono::seconds(1));
  EXPECT_GE(*ts, now - std::chrono::minutes(1));

  EXPECT_TRUE(l["request_id"].is_string() && !l["request_id"].get<std::string>().empty());
  EXPECT_TRUE(l["correlation_id"].is_string() && !l["correlation_id"].get<std::string>().empty());
  EXPECT_TRUE(l["user_id"].is_string() || l["user_id"].is_null());
  if (l["trace_id"].is_string()) {
    EXPECT_TRUE(std::regex_match(l["trace_id"].get<std::string>(), kHex32));
  } else {
    EXPECT_TRUE(l["trace_id"].is_null());
  }
  if (l["span_id"].is_string()) {
    EXPECT_TRUE(std::regex_match(l["span_id"].get<std::string>(), kHex16));
  } else {
    EXPECT_TRUE(l["span_id"].is_null());
  }
  EXPECT_TRUE(l["method"].is_string());
  EXPECT_TRUE(l["path"].is_string());
  ASSERT_TRUE(l["protocol"].is_string());
  const std::string protocol = l["protocol"];
  EXPECT_TRUE(protocol == "HTTP/1.1" || protocol == "HTTP/1.0" || protocol == "HTTP/2") << protocol;
  EXPECT_TRUE(l["status"].is_number_integer());
  ASSERT_TRUE(l["duration_ms"].is_number());
  EXPECT_GE(l["duration_ms"].get<double>(), 0.0);
  if (l["upstream_ms"].is_number()) {
    EXPECT_GE(l["upstream_ms"].get<double>(), 0.0);
    EXPECT_LE(l["upstream_ms"].get<double>(), l["duration_ms"].get<double>() + 0.001);
  } else {
    EXPECT_TRUE(l["upstream_ms"].is_null());
  }
  EXPECT_TRUE(l["bytes_in"].is_number_integer());
  EXPECT_TRUE(l["bytes_out"].is_number_integer());
  ASSERT_TRUE(l["client_address"].is_string());
  EXPECT_TRUE(std::regex_match(l["client_address"].get<std::string>(), kIpPort))
      << l["client_address"];
  EXPECT_EQ(l["client_address"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
  EXPECT_EQ(l["upstream"], "app");
  EXPECT_TRUE(l["upstream_address"].is_string());
  EXPECT_TRUE(l["error"].is_string() || l["error"].is_null());
  EXPECT_TRUE(l["attempts"].is_number_integer());
}

// Waits for exactly `n` lines: n arrive, and no further one shows up before the log settles
// (accessLog returns every line once it has stopped growing).
std::vector<json> exactLines(ProxyUnderTest& proxy, size_t n) {
  auto lines = proxy.accessLog(n);
  EXPECT_EQ(lines.size(), n) << "access log:\n" << proxy.accessLogText();
  for (const auto& l : lines)
    checkSchema(l);
  return lines;
}

// The default test config with extra lines under the listener and under the upstream (each
// indented by four spaces).
std::string configWith(uint16_t port, const std::string& listener_extra,
                       const std::string& upstream_extra) {
  return withPort(R"(workers: 2
drain_timeout: 5s
listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
)" + listener_extra + R"(upstreams:
  - name: app
    url: http://127.0.0.1:{port}
)" + upstream_extra + R"(admin:
  address: 127.0.0.1:0
logging:
  level: debug
)",
                  port);
}

std::string addressOf(uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

// A local error reply: the proxy answered, the upstream was never involved.
void expectLocalError(const json& l, int status, const std::string& error,
                      const HttpResponse* response) {
  SCOPED_TRACE(l.dump());
  EXPECT_EQ(l["status"], status);
  EXPECT_EQ(l["error"], error);
  EXPECT_EQ(l["attempts"], 0);
  EXPECT_TRUE(l["upstream_ms"].is_null());
  if (response) {
    EXPECT_EQ(l["request_id"], response->header("x-request-id"));
    EXPECT_EQ(l["bytes_out"], response->body.size()) << "bytes_out is the body sent";
  }
}

// ---- success and upstream answers ----------------------------------------------------------

TEST(AccessLog, SuccessLineHasEveryField) {
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.body = std::string(1234, 'x');
    return r;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  const auto before = std::chrono::system_clock::now();
  auto r = httpRequest(proxy.port(), "POST", "/ok?q=1",
                       {{"x-request-id", "log-ok"}, {"x-user-id", "alice"}}, "hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto lines = exactLines(proxy, 1);
  ASSERT_EQ(lines.size(), 1u);
  const json& l = lines[0];
  EXPECT_EQ(l["request_id"], "log-ok");
  EXPECT_EQ(l["correlation_id"], r->header("x-correlation-id"));
  EXPECT_EQ(l["user_id"], "alice");
  EXPECT_TRUE(l["trace_id"].is_string());
  EXPECT_EQ(l["method"], "POST");
  EXPECT_EQ(l["path"], "/ok?q=1");
  EXPECT_EQ(l["protocol"], "HTTP/1.1");
  EXPECT_EQ(l["status"], 200);
  EXPECT_TRUE(l["upstream_ms"].is_number());
  EXPECT_EQ(l["bytes_in"], 5);
  EXPECT_EQ(l["bytes_out"], 1234);
  EXPECT_EQ(l["upstream_address"], addressOf(upstream.port()));
  EXPECT_TRUE(l["error"].is_null());
  EXPECT_EQ(l["attempts"], 1);
  auto ts = parseTs(l["ts"]);
  ASSERT_TRUE(ts);
  // `ts` is the request start, at millisecond precision.
  EXPECT_GE(*ts, std::chrono::floor<milliseconds>(before));
}

TEST(AccessLog, ChunkedBodiesAndHttp10AreCounted) {
  TestUpstream upstream([](const ReceivedRequest& req) {
    UpstreamReply r;
    r.body = std::string(req.target == "/chunked" ? 5000 : 42, 'y');
    r.chunked = req.target == "/chunked";
    r.chunk_size = 1000;
    return r;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  {
    RawConnection c(proxy.port());
    ASSERT_TRUE(
        c.send("POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
               "x-request-id: chunked-in\r\n\r\n"
               "64\r\n" +
               std::string(100, 'a') + "\r\nc8\r\n" + std::string(200, 'b') + "\r\n0\r\n\r\n"));
    auto r = c.readResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body.size(), 5000u);
  }
  {
    RawConnection c(proxy.port());
    ASSERT_TRUE(c.send("GET /ten HTTP/1.0\r\nx-request-id: http10\r\n\r\n"));
    auto r = c.readResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  auto lines = exactLines(proxy, 2);
  ASSERT_EQ(lines.size(), 2u);
  for (const auto& l : lines) {
    if (l["request_id"] == "chunked-in") {
      EXPECT_EQ(l["bytes_in"], 300);
      EXPECT_EQ(l["bytes_out"], 5000);
      EXPECT_EQ(l["protocol"], "HTTP/1.1");
    } else {
      EXPECT_EQ(l["request_id"], "http10");
      EXPECT_EQ(l["protocol"], "HTTP/1.0");
      EXPECT_EQ(l["bytes_in"], 0);
      EXPECT_EQ(l["bytes_out"], 42);
    }
  }
}

TEST(AccessLog, UpstreamNotFoundIsNotAnError) {
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.status = 404;
    r.body = "no such thing";
    return r;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto r = httpRequest(proxy.port(), "GET", "/missing", {{"x-request-id", "log-404"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  auto lines = exactLines(proxy, 1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["status"], 404);
  EXPECT_TRUE(lines[0]["error"].is_null());
  EXPECT_EQ(lines[0]["bytes_out"], 13);
  EXPECT_EQ(lines[0]["attempts"], 1);
  EXPECT_TRUE(lines[0]["upstream_ms"].is_number());
}

// ---- errors made by the proxy --------------------------------------------------------------

TEST(AccessLog, MalformedRequestGetsOneLine) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(
      c.send("GET /bad HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
             "\r\nhello"));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(c.waitClosed()) << "400 closes the connection";
  auto lines = exactLines(proxy, 1);
  ASSERT_EQ(lines.size(), 1u);
  expectLocalError(lines[0], 400, "bad_request", &*r);
  EXPECT_EQ(upstream.requestCount(), 0u);
}

TEST(AccessLog, RejectedRequestKeepsItsRequestLine) {
  // The request line was complete and valid before the head went wrong: the log line should
  // say which request it was, or operators cannot tell which endpoint gets the 400s and 431s.
  TestUpstream upstream;
  ProxyUnderTest proxy(configWith(upstream.port(), R"(    limits:
      max_request_headers_size: 4KiB
)",
                                  ""));
  {
    RawConnection c(proxy.port());
    ASSERT_TRUE(
        c.send("POST /orders/42?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
               "Content-Length: 6\r\n\r\nhello"));
    auto r = c.readResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
  }
  {
    RawConnection c(proxy.port());
    ASSERT_TRUE(
        c.send(buildRequest("GET", "/reports/big", {{"x-filler", std::string(8192, 'h')}})));
    auto r = c.readResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431);
  }
  {
    // HTTP/1.0 has no chunked bodies: refused once the head is complete, and logged as the
    // HTTP/1.0 request it was (found by the soak test).
    RawConnection c(proxy.port());
    ASSERT_TRUE(
        c.send("POST /legacy HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n"));
    auto r = c.readResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
  }
  auto lines = exactLines(proxy, 3);
  ASSERT_EQ(lines.size(), 3u);
  std::set<std::string> paths;
  for (const auto& l : lines) {
    SCOPED_TRACE(l.dump());
    paths.insert(l["path"].get<std::string>());
    if (l["path"] == "/orders/42?x=1") {
      EXPECT_EQ(l["status"], 400);
      EXPECT_EQ(l["method"], "POST");
      EXPECT_EQ(l["protocol"], "HTTP/1.1");
    } else if (l["path"] == "/reports/big") {
      EXPECT_EQ(l["status"], 431);
      EXPECT_EQ(l["method"], "GET");
      EXPECT_EQ(l["protocol"], "HTTP/1.1");
    } else {
      EXPECT_EQ(l["path"], "/legacy");
      EXPECT_EQ(l["status"], 400);
      EXPECT_EQ(l["method"], "POST");
      EXPECT_EQ(l["protocol"], "HTTP/1.0");
    }
  }
  EXPECT_EQ(paths.size(), 3u);
}

TEST(AccessLog, HeadersTooLargeGetsOneLine) {
  TestUpstream upstream;
  ProxyUnderTest proxy(configWith(upstream.port(), R"(    limits:
      max_request_headers_size: 4KiB
)",
                                  ""));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/big-head", {{"x-filler", std::string(8192, 'h')}})));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  auto lines = exactLines(proxy, 1);
  ASSERT_EQ(lines.size(), 1u);
  expectLocalError(lines[0], 431, "headers_too_large", &*r);
  EXPECT_EQ(upstream.requestCount(), 0u);
}

TEST(AccessLog, BodyTooLargeGetsOneLine) {
  TestUpstream upstream;
  ProxyUnderTest proxy(configWith(upstream.port(), R"(    limits:
      max_request_body_size: 1KiB
)",
                                  ""));
  {
    RawConnection c(proxy.port());
    ASSERT_TRUE(c.send(
        buildRequest("POST", "/big-body", {{"x-request-id", "too-big"}}, std::string(5000, 'b'))));
    auto r = c.readResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_EQ(json::parse(r->body)["error"], "body_too_large");
    auto lines = exactLines(proxy, 1);
    ASSERT_EQ(lines.size(), 1u);
    expectLocalError(lines[0], 413, "body_too_large", &*r);
    EXPECT_EQ(lines[0]["request_id"], "too-big");
    EXPECT_EQ(lines[0]["method"], "POST");
    EXPECT_EQ(lines[0]["path"], "/big-body");
  }
  EXPECT_EQ(upstream.requestCount(), 0u);

  // Without a Content-Length the limit is found while streaming; still one line.
  RawConnection c(proxy.port());
  std::string chunked =
      "POST /big-chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
      "x-request-id: too-big-chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i)
    chunked += "200\r\n" + std::string(512, 'c') + "\r\n";
  chunked += "0\r\n\r\n";
  ASSERT_TRUE(c.send(chunked));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  auto lines = exactLines(proxy, 2);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["request_id"], "too-big-chunked");
  EXPECT_EQ(lines[1]["status"], 413);
  EXPECT_EQ(lines[1]["error"], "body_too_large");
  EXPECT_EQ(lines[1]["bytes_out"], r->body.size());
}

// ---- upstream failures ---------------------------------------------------------------------

TEST(AccessLog, UpstreamRefused) {
  RefusingPort dead;
  const uint16_t port = dead.port();
  ProxyUnderTest proxy(defaultConfig(port));
  auto r = httpRequest(proxy.port(), "GET", "/refused", {{"x-request-id", "refused"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  auto lines = exactLines(proxy, 1);
  ASSERT_EQ(lines.size(), 1u);
  const json& l = lines[0];
  SCOPED_TRACE(l.dump());
  EXPECT_EQ(l["status"], 502);
  EXPECT_EQ(l["error"], "upstream_connect_failed");
  EXPECT_TRUE(l["upstream_ms"].is_null()) << "the upstream was never reached";
  EXPECT_GE(l["attempts"].get<int>(), 1) << "a refused connect is an attempt";
  EXPECT_EQ(l["upstream_address"], addressOf(port)) << "the address that was tried";
  EXPECT_EQ(l["bytes_out"], r->body.size()) << "bytes_out is the error body sent";
  EXPECT_EQ(l["bytes_in"], 0);
}

TEST(AccessLog, UpstreamClosesBeforeResponding) {
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.close_without_reply = true;
    return r;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto r = httpRequest(proxy.port(), "POST", "/reset", {{"x-request-id", "reset"}}, "data");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(json::parse(r->body)["error"], "upstream_reset");
  auto lines = exactLines(proxy, 1);
  ASSERT_EQ(lines.size(), 1u);
  const json& l = lines[0];
  SCOPED_TRACE(l.dump());
  EXPECT_EQ(l["status"], 502);
  EXPECT_EQ(l["error"], "upstream_reset");
  EXPECT_EQ(l["attempts"], 1) << "a POST that reached the upstream is not retried";
  EXPECT_TRUE(l["upstream_ms"].is_number());
  EXPECT_EQ(l["upstream_address"], addressOf(upstream.port()));
  EXPECT_EQ(l["bytes_in"], 4);
  EXPECT_EQ(l["bytes_out"], r->body.size());
}

TEST(AccessLog, UpstreamSendsGarbage) {
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.raw = "THIS IS NOT HTTP\r\n\r\n";
    r.close = true;
    return r;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto r = httpRequest(proxy.port(), "GET", "/garbage", {{"x-request-id", "garbage"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(json::parse(r->body)["error"], "upstream_protocol_error");
  auto lines = exactLines(proxy, 1);
  ASSERT_EQ(lines.size(), 1u);
  SCOPED_TRACE(lines[0].dump());
  EXPECT_EQ(lines[0]["status"], 502);
  EXPECT_EQ(lines[0]["error"], "upstream_protocol_error");
  EXPECT_EQ(lines[0]["attempts"], 1);
  EXPECT_TRUE(lines[0]["upstream_ms"].is_number());
  EXPECT_EQ(lines[0]["bytes_out"], r->body.size());
}

TEST(AccessLog, UpstreamTooSlow) {
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.hang = true;
    return r;
  });
  ProxyUnderTest proxy(configWith(upstream.port(), "", R"(    timeouts:
      request: 300ms
)"));
  const auto start = std::chrono::steady_clock::now();
  auto r = httpRequest(proxy.port(), "GET", "/slow", {{"x-request-id", "slow"}});
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504);
  EXPECT_EQ(json::parse(r->body)["error"], "upstream_timeout");
  EXPECT_GE(took, milliseconds(250));
  auto lines = exactLines(proxy, 1);
  ASSERT_EQ(lines.size(), 1u);
  SCOPED_TRACE(lines[0].dump());
  EXPECT_EQ(lines[0]["status"], 504);
  EXPECT_EQ(lines[0]["error"], "upstream_timeout");
  EXPECT_GE(lines[0]["duration_ms"].get<double>(), 250.0);
  EXPECT_LT(lines[0]["duration_ms"].get<double>(), 5000.0);
  EXPECT_TRUE(lines[0]["upstream_ms"].is_number());
  EXPECT_EQ(lines[0]["attempts"], 1);
  EXPECT_EQ(lines[0]["bytes_out"], r->body.size());
}

TEST(AccessLog, ClientDisconnectsWhileWaiting) {
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.hang = true;
    return r;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  {
    RawConnection c(proxy.port());
    ASSERT_TRUE(c.send(buildRequest("GET", "/wait", {{"x-request-id", "gave-up"}})));
    ASSERT_TRUE(eventually([&] { return upstream.requestCount() == 1; }));
  }  // the client closes
  auto lines = exactLines(proxy, 1);
  ASSERT_EQ(lines.size(), 1u);
  SCOPED_TRACE(lines[0].dump());
  EXPECT_EQ(lines[0]["request_id"], "gave-up");
  EXPECT_EQ(lines[0]["status"], 0);
  EXPECT_EQ(lines[0]["error"], "client_disconnected");
  EXPECT_EQ(lines[0]["bytes_out"], 0);
  EXPECT_EQ(lines[0]["attempts"], 1);
  EXPECT_EQ(lines[0]["path"], "/wait");
}

// ---- hostile input -------------------------------------------------------------------------

TEST(AccessLog, HostileBytesStayOnOneValidLine) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  struct Probe {
    std::string path;
    std::string user;  // sent as x-user-id when not empty
    bool must_pass;    // the parser accepts it, so it must be proxied and logged verbatim
  };
  struct Answer {
    int status = 0;
    std::string id;  // the request id the response carried
  };
  const std::vector<Probe> probes = {
      {"/pct/%22%5C%0A%0D%00%ff?q=%E2%80%A8&x=%7B%22a%22%7D", "", true},
      // Raw characters that would end a JSON string or line if not escaped.
      {R"(/q/"},"status":999,"x":"\<script>`|^{})", "", true},
      {"/utf8/caf\xc3\xa9/\xe2\x80\xa8", "", false},  // raw UTF-8, incl. U+2028
      {"/raw/\x80\xff\xfe/obs", "", false},           // obs-text, not UTF-8
      {"/long/" + std::string(10000, 'L'), "", true},
      // A trusted user id may contain quotes and backslashes (user_id.pattern is \x21-\x7E).
      {"/user", R"("},"status":999,"x":"\\)", true},
  };
  std::vector<Answer> answers(probes.size());
  for (size_t i = 0; i < probes.size(); ++i) {
    const Probe& p = probes[i];
    Answer& a = answers[i];
    RawConnection c(proxy.port());
    std::string head = "GET " + p.path + " HTTP/1.1\r\nHost: t\r\nx-request-id: hostile-" +
                       std::to_string(i) + "\r\n";
    if (!p.user.empty()) head += "x-user-id: " + p.user + "\r\n";
    ASSERT_TRUE(c.send(head + "\r\n"));
    auto r = c.readResponse();
    ASSERT_TRUE(r) << "no response for probe #" << i;
    a.status = r->status;
    a.id = r->header("x-request-id");
    if (p.must_pass) {
      EXPECT_EQ(r->status, 200) << "probe #" << i;
      EXPECT_EQ(a.id, "hostile-" + std::to_string(i));
    } else {
      EXPECT_TRUE(r->status == 200 || r->status == 400) << "probe #" << i << ": " << r->status;
    }
  }

  auto lines = exactLines(proxy, probes.size());
  ASSERT_EQ(lines.size(), probes.size());
  for (size_t i = 0; i < probes.size(); ++i) {
    const Probe& p = probes[i];
    const Answer& a = answers[i];
    SCOPED_TRACE("probe #" + std::to_string(i));
    const json* line = nullptr;
    for (const auto& l : lines) {
      if (l["request_id"] == a.id) line = &l;
    }
    ASSERT_NE(line, nullptr) << "no log line with the request id the response carried";
    EXPECT_EQ((*line)["status"], a.status);
    const std::string logged = (*line)["path"];
    if (a.status == 400) {
      EXPECT_EQ((*line)["error"], "bad_request");
    } else if (i == 3) {
      // Not UTF-8: escaped or replaced, but recognisably this path.
      EXPECT_EQ(logged.rfind("/raw/", 0), 0u) << logged;
      EXPECT_NE(logged.find("/obs"), std::string::npos) << logged;
    } else if (i == 4) {
      // Long values may be truncated, never split.
      EXPECT_EQ(logged.rfind("/long/LLLL", 0), 0u);
      EXPECT_LE(logged.size(), p.path.size() + 16);
    } else {
      EXPECT_EQ(logged, p.path);
    }
    if (!p.user.empty()) {
      EXPECT_EQ((*line)["user_id"], p.user);
    }
  }
}

}  // namespace
}  // namespace viscount::test
