// HTTP/1.x connection semantics through the proxy: keep-alive and pipelining, Connection and
// HTTP/1.0 rules, bodiless responses, 100-continue and other 1xx, hop-by-hop headers in both
// directions, forwarded headers, and when an upstream connection may be reused.

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"

namespace viscount::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

nlohmann::json echoed(const HttpResponse& r) {
  return nlohmann::json::parse(r.body, nullptr, false);
}

// ---- keep-alive and pipelining -----------------------------------------------------------------

TEST(Http1Semantics, KeepAliveReusesOneUpstreamConnectionPerClientConnection) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  constexpr int kClients = 3;
  constexpr int kRequests = 25;
  for (int client = 0; client < kClients; ++client) {
    RawConnection c(proxy.port());
    for (int i = 0; i < kRequests; ++i) {
      const std::string path = "/c" + std::to_string(client) + "/" + std::to_string(i);
      const bool post = i % 3 == 0;
      ASSERT_TRUE(c.send(
          buildRequest(post ? "POST" : "GET", path, {}, post ? std::string(100 + i, 'b') : "")));
      auto r = c.readResponse();
      ASSERT_TRUE(r) << path;
      EXPECT_EQ(r->status, 200);
      EXPECT_EQ(echoed(*r)["target"], path);
      EXPECT_EQ(r->count("connection"), 0u) << "a keep-alive response needs no Connection";
    }
  }
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), static_cast<size_t>(kClients * kRequests));
  std::map<std::string, std::set<int>> connections_by_client;
  for (const auto& req : reqs)
    connections_by_client[req.target.substr(0, 3)].insert(req.connection_id);
  for (const auto& [client, ids] : connections_by_client)
    EXPECT_EQ(ids.size(), 1u) << "client " << client << " used several upstream connections";
  EXPECT_LE(upstream.connectionsAccepted(), kClients);
}

TEST(Http1Semantics, PipelinedRequestsAreAnsweredInOrder) {
  TestUpstream upstream([](const ReceivedRequest& req) {
    UpstreamReply reply = TestUpstream::echoContext(req);
    // Early requests answer slowest: order must come from the proxy, not from timing.
    if (req.target == "/p/0" || req.target == "/p/3") reply.delay = milliseconds(60);
    return reply;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  constexpr int kCount = 10;
  std::string wire;
  for (int i = 0; i < kCount; ++i) {
    const std::string path = "/p/" + std::to_string(i);
    const std::string id = "pipe-" + std::to_string(i);
    if (i == 4) {
      wire += buildRequest("POST", path, {{"X-Request-Id", id}}, "body-of-" + path);
    } else if (i == 7) {
      wire += buildRequest("HEAD", path, {{"X-Request-Id", id}});
    } else {
      wire += buildRequest("GET", path, {{"X-Request-Id", id}});
    }
  }
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(wire));  // one write
  for (int i = 0; i < kCount; ++i) {
    auto r = c.readResponse(/*head_request=*/i == 7, seconds(5));
    ASSERT_TRUE(r) << "response " << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("x-request-id"), "pipe-" + std::to_string(i));
    if (i != 7) {
      auto seen = echoed(*r);
      EXPECT_EQ(seen["target"], "/p/" + std::to_string(i));
      EXPECT_EQ(seen["request_id"], "pipe-" + std::to_string(i));
      EXPECT_EQ(seen["body_size"], i == 4 ? 12u : 0u);
    } else {
      EXPECT_TRUE(r->body.empty());
    }
  }
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i)
    EXPECT_EQ(reqs[i].target, "/p/" + std::to_string(i));
  // Still usable afterwards.
  ASSERT_TRUE(c.send(buildRequest("GET", "/after")));
  auto after = c.readResponse();
  ASSERT_TRUE(after);
  EXPECT_EQ(echoed(*after)["target"], "/after");
}

TEST(Http1Semantics, OneConnectionCarriesRequestsOfEveryShapeInTurn) {
  // Between requests a connection gives its parser back to the worker's pool and takes a fresh
  // one (or another connection's) for the next request: a head too large to keep (the pool
  // trims it), trailers, empty lines, a head split over several reads and a small head after
  // them must all come out as on a connection with a parser of its own. One worker: one pool.
  TestUpstream upstream;
  ProxyUnderTest proxy(singleUpstreamConfig(upstream.port(), 1));
  RawConnection c(proxy.port());
  RawConnection other(proxy.port());

  Headers many;
  for (int i = 0; i < 90; ++i)
    many.push_back({"x-field-" + std::to_string(i), "value-" + std::to_string(i)});
  ASSERT_TRUE(c.send(buildRequest("GET", "/many", many)));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(echoed(*r)["target"], "/many");

  ASSERT_TRUE(
      c.send("POST /trailers HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n"));
  r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(echoed(*r)["target"], "/trailers");

  // Another connection's request in between: the pool hands the same reader around.
  ASSERT_TRUE(other.send(buildRequest("GET", "/other")));
  r = other.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(echoed(*r)["target"], "/other");

  ASSERT_TRUE(c.send("\r\n"));  // an empty line before a request is ignored
  std::this_thread::sleep_for(milliseconds(30));
  for (const char* piece : {"GET /sp", "lit HTTP/1.1\r\nHo", "st: a\r\n\r\n"}) {
    ASSERT_TRUE(c.send(piece));
    std::this_thread::sleep_for(milliseconds(30));
  }
  r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(echoed(*r)["target"], "/split");

  ASSERT_TRUE(c.send(buildRequest("GET", "/small")));
  r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(echoed(*r)["target"], "/small");

  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(reqs[0].header("x-field-0"), "value-0");
  EXPECT_EQ(reqs[0].header("x-field-89"), "value-89");
  EXPECT_EQ(reqs[1].body, "hello");
  EXPECT_EQ(headerValue(reqs[1].trailers, "x-sum"), "42");
  for (size_t i = 2; i < reqs.size(); ++i) {
    EXPECT_EQ(reqs[i].count("x-field-0"), 0u) << reqs[i].target;
    EXPECT_TRUE(reqs[i].trailers.empty()) << reqs[i].target;
    EXPECT_EQ(reqs[i].header("x-forwarded-for"), "127.0.0.1") << reqs[i].target;
  }
}

// ---- Connection and HTTP/1.0 -------------------------------------------------------------------

TEST(Http1Semantics, ClientConnectionCloseClosesAfterResponse) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/bye", {{"Connection", "close"}})));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.waitClosed(seconds(2)));
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].count("connection"), 0u) << "Connection is hop-by-hop";
}

TEST(Http1Semantics, Http10WithoutKeepAliveCloses) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send("GET /old HTTP/1.0\r\n\r\n"));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->chunked) << "HTTP/1.0 has no chunked encoding";
  EXPECT_NE(r->header("connection"), "keep-alive");
  EXPECT_EQ(echoed(*r)["target"], "/old");
  EXPECT_TRUE(c.waitClosed(seconds(2)));
}

TEST(Http1Semantics, Http10WithKeepAliveStaysOpen) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        c.send("GET /old/" + std::to_string(i) + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r = c.readResponse(false, seconds(3));
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("connection"), "keep-alive");
    EXPECT_FALSE(r->chunked);
    EXPECT_FALSE(r->header("content-length").empty());
  }
  // Without the keep-alive token the next one is the last.
  ASSERT_TRUE(c.send("GET /old/last HTTP/1.0\r\n\r\n"));
  auto last = c.readResponse();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->status, 200);
  EXPECT_TRUE(c.waitClosed(seconds(2)));
  EXPECT_EQ(upstream.requestCount(), 4u);
}

// ---- bodiless responses ------------------------------------------------------------------------

TEST(Http1Semantics, HeadResponseHasNoBodyButKeepsContentLength) {
  TestUpstream upstream([](const ReceivedRequest& req) {
    UpstreamReply reply;
    reply.body = std::string(1234, 'h');  // not sent for HEAD; its length is
    if (req.method == "GET") reply.body = "after-head";
    return reply;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("HEAD", "/h")));
  auto r = c.readResponse(/*head_request=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-length"), "1234");
  EXPECT_EQ(r->count("transfer-encoding"), 0u);
  // A stray body would be read as the next response's status line.
  ASSERT_TRUE(c.send(buildRequest("GET", "/h")));
  auto next = c.readResponse(false, seconds(3));
  ASSERT_TRUE(next) << "the connection is out of step after HEAD";
  EXPECT_EQ(next->body, "after-head");
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "HEAD");
}

TEST(Http1Semantics, NoContentAndNotModifiedHaveNoBody) {
  TestUpstream upstream([](const ReceivedRequest& req) {
    UpstreamReply reply;
    if (req.target == "/204") {
      reply.status = 204;
    } else if (req.target == "/304") {
      reply.status = 304;
      reply.headers.emplace_back("etag", "\"v1\"");
      reply.body = "abcd";  // only its length is sent: "content-length: 4", no body
    } else {
      reply.body = "next";
    }
    return reply;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  for (const std::string path : {"/204", "/304"}) {
    SCOPED_TRACE(path);
    ASSERT_TRUE(c.send(buildRequest("GET", path)));
    auto r = c.readResponse(false, seconds(3));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, std::stoi(path.substr(1)));
    EXPECT_EQ(r->count("transfer-encoding"), 0u);
    if (path == "/204") {
      EXPECT_EQ(r->count("content-length"), 0u) << "204 must not carry Content-Length";
    } else {
      EXPECT_EQ(r->header("etag"), "\"v1\"");
    }
    ASSERT_TRUE(c.send(buildRequest("GET", "/next")));
    auto next = c.readResponse(false, seconds(3));
    ASSERT_TRUE(next) << "the connection is out of step";
    EXPECT_EQ(next->body, "next");
  }
}

// ---- Expect and 1xx ----------------------------------------------------------------------------

TEST(Http1Semantics, ExpectContinueGets100BeforeTheBody) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(
      "POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n"));
  auto interim = c.readResponseOrInterim(false, seconds(3));
  ASSERT_TRUE(interim) << "no 100 Continue before the body was sent";
  EXPECT_EQ(interim->status, 100);
  EXPECT_EQ(upstream.requestCount(), 0u);
  ASSERT_TRUE(c.send("hello world"));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->interim.empty()) << "a second 100 Continue";
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].body, "hello world");
  EXPECT_EQ(reqs[0].count("expect"), 0u) << "the proxy answered the expectation itself";
}

TEST(Http1Semantics, UnknownExpectationIs417) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(
      "POST /upload HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nContent-Length: 5\r\n\r\n"
      "hello"));
  auto r = c.readResponse(false, seconds(3));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 417);
  EXPECT_EQ(r->header("content-type"), "application/json");
  EXPECT_FALSE(r->header("x-request-id").empty());
  auto body = echoed(*r);
  EXPECT_EQ(body["error"], "expectation_failed");
  EXPECT_EQ(body["request_id"], r->header("x-request-id"));
  proxy.accessLog(1);
  EXPECT_EQ(upstream.requestCount(), 0u);
}

TEST(Http1Semantics, EarlyHintsAreForwardedBeforeTheFinalResponse) {
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply reply;
    reply.raw =
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal";
    return reply;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/page")));
  auto hints = c.readResponseOrInterim(false, seconds(3));
  ASSERT_TRUE(hints);
  EXPECT_EQ(hints->status, 103);
  EXPECT_EQ(hints->header("link"), "</style.css>; rel=preload; as=style");
  auto r = c.readResponse(false, seconds(3));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "final");

  // HTTP/1.0 has no 1xx: the client sees only the final response.
  RawConnection old(proxy.port());
  ASSERT_TRUE(old.send("GET /page HTTP/1.0\r\n\r\n"));
  auto r10 = old.readResponse(false, seconds(3));
  ASSERT_TRUE(r10);
  EXPECT_EQ(r10->status, 200);
  EXPECT_TRUE(r10->interim.empty()) << "a 1xx sent to an HTTP/1.0 client";
  EXPECT_EQ(r10->body, "final");
}

// ---- hop-by-hop and forwarded headers ----------------------------------------------------------

TEST(Http1Semantics, HopByHopRequestHeadersAreNotForwarded) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/hop",
                                  {{"Connection", "keep-alive, X-Drop-Me, Upgrade, HTTP2-Settings"},
                                   {"Keep-Alive", "timeout=5, max=100"},
                                   {"Proxy-Connection", "keep-alive"},
                                   {"TE", "trailers"},
                                   {"Upgrade", "h2c"},
                                   {"HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"},
                                   {"X-Drop-Me", "secret"},
                                   {"X-Keep-Me", "kept"}})));
  auto r = c.readResponse(false, seconds(3));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << "the proxy does not upgrade";
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  for (const char* name : {"connection", "keep-alive", "proxy-connection", "te", "upgrade",
                           "http2-settings", "x-drop-me", "transfer-encoding"}) {
    EXPECT_EQ(reqs[0].count(name), 0u) << name << " reached the upstream";
  }
  EXPECT_EQ(reqs[0].header("x-keep-me"), "kept");
  // The connection was not switched to another protocol.
  ASSERT_TRUE(c.send(buildRequest("GET", "/after")));
  auto after = c.readResponse(false, seconds(3));
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

TEST(Http1Semantics, UpgradeIsNeverForwarded) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  for (const std::string upgrade : {"h2c", "websocket", "h2c, websocket"}) {
    SCOPED_TRACE(upgrade);
    const size_t before = upstream.requestCount();
    ASSERT_TRUE(c.send(buildRequest("POST", "/up",
                                    {{"Connection", "Upgrade"},
                                     {"Upgrade", upgrade},
                                     {"Sec-WebSocket-Key", "dGhlIHNhbXBsZQ=="},
                                     {"Sec-WebSocket-Version", "13"}},
                                    "payload")));
    auto r = c.readResponse(false, seconds(3));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->count("upgrade"), 0u);
    auto reqs = upstream.requests();
    ASSERT_EQ(reqs.size(), before + 1);
    EXPECT_EQ(reqs.back().count("upgrade"), 0u);
    EXPECT_EQ(reqs.back().count("connection"), 0u);
    EXPECT_EQ(reqs.back().body, "payload");
  }
}

TEST(Http1Semantics, ForwardedHeadersAreSet) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto plain = httpRequest(proxy.port(), "GET", "/fwd");
  ASSERT_TRUE(plain);
  // A client-supplied chain from a trusted (loopback) peer is extended; an invalid proto is
  // replaced with what the proxy saw.
  auto chained = httpRequest(proxy.port(), "GET", "/fwd",
                             {{"X-Forwarded-For", "10.1.2.3"}, {"X-Forwarded-Proto", "gopher"}});
  ASSERT_TRUE(chained);
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].count("x-forwarded-for"), 1u);
  EXPECT_EQ(reqs[0].header("x-forwarded-for"), "127.0.0.1");
  EXPECT_EQ(reqs[0].count("x-forwarded-proto"), 1u);
  EXPECT_EQ(reqs[0].header("x-forwarded-proto"), "http");
  EXPECT_EQ(reqs[1].count("x-forwarded-for"), 1u);
  EXPECT_EQ(reqs[1].header("x-forwarded-for"), "10.1.2.3, 127.0.0.1");
  EXPECT_EQ(reqs[1].count("x-forwarded-proto"), 1u);
  EXPECT_EQ(reqs[1].header("x-forwarded-proto"), "http");
}

TEST(Http1Semantics, UpstreamHopByHopHeadersAreNotForwardedToClient) {
  TestUpstream upstream([](const ReceivedRequest& req) {
    UpstreamReply reply;
    reply.headers = {{"Connection", "X-Internal"}, {"X-Internal", "secret"},
                     {"Keep-Alive", "timeout=99"}, {"Proxy-Connection", "keep-alive"},
                     {"Upgrade", "foo"},           {"TE", "trailers"},
                     {"X-Public", "yes"}};
    reply.body = "some body";
    reply.chunked = req.target == "/chunked";
    return reply;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  for (const std::string path : {"/chunked", "/length"}) {
    SCOPED_TRACE(path);
    ASSERT_TRUE(c.send(buildRequest("GET", path)));
    auto r = c.readResponse(false, seconds(3));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "some body");
    EXPECT_EQ(r->header("x-public"), "yes");
    for (const char* name : {"x-internal", "keep-alive", "proxy-connection", "upgrade", "te"})
      EXPECT_EQ(r->count(name), 0u) << name << " reached the client";
    EXPECT_EQ(r->count("connection"), 0u) << r->header("connection");
    // Framing is the proxy's own: at most one framing header, never both.
    EXPECT_LE(r->count("transfer-encoding") + r->count("content-length"), 1u);
  }
}

// ---- upstream connection reuse -----------------------------------------------------------------

TEST(Http1Semantics, UpstreamConnectionCloseIsNotReused) {
  TestUpstream upstream([](const ReceivedRequest& req) {
    UpstreamReply reply = TestUpstream::echoContext(req);
    reply.close = req.target == "/first";
    return reply;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  for (const std::string path : {"/first", "/second", "/third"}) {
    ASSERT_TRUE(c.send(buildRequest("GET", path)));
    auto r = c.readResponse(false, seconds(3));
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_EQ(echoed(*r)["target"], path);
  }
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_NE(reqs[1].connection_id, reqs[0].connection_id);
  EXPECT_EQ(reqs[2].connection_id, reqs[1].connection_id);
  EXPECT_EQ(upstream.connectionsAccepted(), 2);
}

TEST(Http1Semantics, UpstreamBytesAfterTheBodyPreventReuse) {
  TestUpstream upstream([](const ReceivedRequest& req) {
    UpstreamReply reply = TestUpstream::echoContext(req);
    if (req.target == "/first") {
      // A response followed by bytes no request asked for.
      reply.raw =
          "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
          "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled";
    }
    return reply;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/first")));
  auto first = c.readResponse(false, seconds(3));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, "ok");
  ASSERT_TRUE(c.send(buildRequest("GET", "/second")));
  auto second = c.readResponse(false, seconds(3));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 200);
  EXPECT_NE(second->body, "smuggled") << "the extra bytes answered the next request";
  EXPECT_EQ(echoed(*second)["target"], "/second");
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_NE(reqs[1].connection_id, reqs[0].connection_id);
}

TEST(Http1Semantics, UpstreamResponseWithContentLengthAndChunkedIs502) {
  TestUpstream upstream([](const ReceivedRequest& req) {
    UpstreamReply reply = TestUpstream::echoContext(req);
    if (req.target == "/bad") {
      reply.raw =
          "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"
          "5\r\nhello\r\n0\r\n\r\n";
    }
    return reply;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send(buildRequest("GET", "/bad")));
  auto r = c.readResponse(false, seconds(3));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(r->header("content-type"), "application/json");
  auto body = echoed(*r);
  EXPECT_EQ(body["error"], "upstream_protocol_error");
  EXPECT_EQ(body["request_id"], r->header("x-request-id"));
  auto log = proxy.accessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["status"], 502);
  EXPECT_EQ(log[0]["error"], "upstream_protocol_error");
  // The client connection is still good, and the broken upstream connection is not reused.
  ASSERT_TRUE(c.send(buildRequest("GET", "/good")));
  auto next = c.readResponse(false, seconds(3));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_NE(reqs[1].connection_id, reqs[0].connection_id);
}

}  // namespace
}  // namespace viscount::test
