// Request framing: every malformed or ambiguous request is answered with the contract's error
// (400 unless noted), the proxy closes the connection, and nothing reaches the upstream. These
// are the inputs that let a front proxy and a back server disagree about where a request ends
// (request smuggling), so each one is sent as exact bytes.

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"

namespace viscount::test {
namespace {

using namespace std::string_literals;  // "..."s keeps embedded NUL bytes

// The default config with a small header limit, so the 431 case needs only a few KiB.
std::string framingConfig(uint16_t upstream_port) {
  return withPort(R"(workers: 2
drain_timeout: 5s
listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
    limits:
      max_request_headers_size: 4KiB
upstreams:
  - name: app
    url: http://127.0.0.1:{port}
admin:
  address: 127.0.0.1:0
logging:
  level: debug
)",
                  upstream_port);
}

std::string errorCodeFor(int status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 417:
      return "expectation_failed";
    case 414:
      return "uri_too_long";
    case 431:
      return "headers_too_large";
    case 501:
      return "not_implemented";
    case 505:
      return "version_not_supported";
    default:
      return "?";
  }
}

// Makes control bytes readable in failure messages.
std::string printable(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// What the upstream received, for failure messages.
std::string describe(const std::vector<ReceivedRequest>& requests) {
  std::string out;
  for (const auto& req : requests) {
    out += "\n  " + req.method + " " + req.target + " " + req.version;
    for (const auto& [name, value] : req.headers)
      out += "\n    " + printable(name) + ": " + printable(value);
  }
  return out;
}

// Checks one local error reply: status, JSON body, ids, proxy-status and connection: close.
void expectErrorReply(const std::optional<HttpResponse>& r, const std::set<int>& statuses) {
  ASSERT_TRUE(r) << "no parsable response";
  ASSERT_TRUE(statuses.count(r->status)) << "unexpected status " << r->status;
  EXPECT_EQ(r->header("content-type"), "application/json");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_FALSE(r->header("proxy-status").empty());
  EXPECT_EQ(r->count("x-request-id"), 1u);
  EXPECT_FALSE(r->header("x-request-id").empty());
  nlohmann::json body = nlohmann::json::parse(r->body, nullptr, false);
  ASSERT_FALSE(body.is_discarded()) << "body is not JSON: " << r->body;
  EXPECT_EQ(body.value("error", ""), errorCodeFor(r->status));
  EXPECT_EQ(body.value("status", 0), r->status);
  EXPECT_EQ(body.value("request_id", ""), r->header("x-request-id"));
}

class FramingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    proxy_ = std::make_unique<ProxyUnderTest>(framingConfig(upstream_.port()));
  }

  // Sends `bytes` on a fresh connection and expects one error reply with a status in
  // `statuses`, the connection closed by the proxy, one access-log line and no upstream request.
  void expectRejected(const std::string& bytes, const std::set<int>& statuses) {
    SCOPED_TRACE("request bytes: " + printable(bytes));
    RawConnection c(proxy_->port());
    ASSERT_TRUE(c.send(bytes));
    auto r = c.readResponse(false, std::chrono::seconds(3));
    expectErrorReply(r, statuses);
    // Without an error reply the connection stays open by design; no point waiting for it.
    const bool replied = !HasFatalFailure();
    if (replied) {
      EXPECT_TRUE(c.waitClosed(std::chrono::seconds(3))) << "proxy kept the connection open";
    }
    auto log = proxy_->accessLog(1);
    ASSERT_EQ(log.size(), 1u);
    if (replied) {
      EXPECT_EQ(log[0]["status"], r->status);
      EXPECT_EQ(log[0]["error"], errorCodeFor(r->status));
      EXPECT_EQ(log[0]["request_id"], r->header("x-request-id"));
    }
    // The access-log line is written when the exchange completes, after anything it would have
    // sent upstream.
    EXPECT_EQ(upstream_.requestCount(), 0u)
        << "a rejected request reached the upstream:" << describe(upstream_.requests());
  }

  TestUpstream upstream_;
  std::unique_ptr<ProxyUnderTest> proxy_;
};

// ---- the table of malformed requests ---------------------------------------------------------

struct BadRequest {
  std::string name;
  std::string bytes;
  std::set<int> statuses = {400};
};

const std::string kChunkedPost =
    "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

std::vector<BadRequest> badRequests() {
  return {
      // Content-Length and Transfer-Encoding together.
      {"ContentLengthAndChunked",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n"},
      {"ChunkedAndContentLength",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
       "0\r\n\r\n"},
      // Content-Length values.
      {"DuplicateDifferingContentLength",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
      {"DuplicateIdenticalContentLength",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
      {"ContentLengthList", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"},
      {"NegativeContentLength", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nx"},
      {"HexContentLength", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello"},
      {"PlusContentLength", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"},
      {"SpaceInsideContentLength", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\nx"},
      {"OverflowingContentLength",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\nx"},
      {"EmptyContentLength", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n"},
      // Transfer-Encoding other than exactly one "chunked".
      {"TransferEncodingGzipChunked",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
      {"TransferEncodingChunkedIdentity",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"},
      {"TransferEncodingXchunked",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
      {"TransferEncodingQuoted",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n"},
      {"TransferEncodingChunkedTwice",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
       "\r\n\r\n0\r\n\r\n"},
      {"TransferEncodingChunkedThenIdentity",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity"
       "\r\n\r\n0\r\n\r\n"},
      {"TransferEncodingVerticalTab",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n"},
      {"TransferEncodingLeadingVerticalTab",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0b"
       "chunked\r\n\r\n0\r\n\r\n"},
      {"TransferEncodingHighByte",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\xff\r\n\r\n0\r\n\r\n"},
      {"TransferEncodingInHttp10",
       "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
      // Line endings.
      {"BareLfEverywhere", "GET / HTTP/1.1\nHost: a\n\n"},
      {"BareLfAfterRequestLine", "GET / HTTP/1.1\nHost: a\r\n\r\n"},
      {"BareLfAfterHeader", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"},
      {"BareLfEndOfHead", "GET / HTTP/1.1\r\nHost: a\r\n\n"},
      {"BareCrAfterRequestLine", "GET / HTTP/1.1\rHost: a\r\n\r\n"},
      {"BareCrInValue", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n"},
      {"BareCrAfterHeader", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\r\n\r\n"},
      // Obsolete line folding.
      {"ObsFoldSpace", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"},
      {"ObsFoldTab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n"},
      {"ObsFoldAfterEmptyValue", "GET / HTTP/1.1\r\nHost: a\r\nX-A:\r\n c\r\n\r\n"},
      {"ObsFoldAfterBlankValue", "GET / HTTP/1.1\r\nHost: a\r\nX-A: \r\n c\r\n\r\n"},
      {"ObsFoldedTransferEncodingValue",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"},
      {"ObsFoldedContentLengthValue",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 5\r\n\r\nhello"},
      {"ObsFoldHidingTransferEncoding",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-A: b\r\n Transfer-Encoding: chunked"
       "\r\n\r\nhello"},
      // Control bytes.
      {"NulInHeaderName", "GET / HTTP/1.1\r\nHost: a\r\nX\0A: b\r\n\r\n"s},
      {"NulInHeaderValue", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n"s},
      {"NulInTarget", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"s},
      {"ControlByteInHeaderName",
       "GET / HTTP/1.1\r\nHost: a\r\nX\x01"
       "A: b\r\n\r\n"},
      {"ControlByteInHeaderValue",
       "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01"
       "c\r\n\r\n"},
      {"EscapeInHeaderValue", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x1b[0m\r\n\r\n"},
      {"DeleteInHeaderValue",
       "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f"
       "c\r\n\r\n"},
      {"ControlByteInTarget",
       "GET /a\x01"
       "b HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"DeleteInTarget",
       "GET /a\x7f"
       "b HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"TabInTarget", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"SpaceInTarget", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"NulInHost", "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n"s},
      // Whitespace in the wrong places.
      {"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n"},
      {"TabBeforeColon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n"},
      {"SpaceBeforeColonInHost", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"},
      {"SpaceBeforeColonInTransferEncoding",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n"
       "hello"},
      {"SpaceBeforeFirstHeader", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"},
      {"TabBeforeFirstHeader", "GET / HTTP/1.1\r\n\tX-A: b\r\nHost: a\r\n\r\n"},
      // Chunked bodies.
      {"ChunkSizeOverflow", kChunkedPost + "fffffffffffffffff1\r\nx\r\n0\r\n\r\n"},
      {"ChunkSizeJunk", kChunkedPost + "5x\r\nhello\r\n0\r\n\r\n"},
      {"ChunkSizeNotHex", kChunkedPost + "zz\r\nhello\r\n0\r\n\r\n"},
      {"ChunkSizeNegative", kChunkedPost + "-5\r\nhello\r\n0\r\n\r\n"},
      {"ChunkSizeHexPrefix", kChunkedPost + "0x5\r\nhello\r\n0\r\n\r\n"},
      {"ChunkSizeEmpty", kChunkedPost + "\r\nhello\r\n0\r\n\r\n"},
      {"ChunkExtensionBareCr", kChunkedPost + "5;a=b\rc\r\nhello\r\n0\r\n\r\n"},
      {"ChunkSizeBareLf", kChunkedPost + "5\nhello\r\n0\r\n\r\n"},
      {"ChunkDataMissingCrlf", kChunkedPost + "5\r\nhelloXX0\r\n\r\n"},
      {"ChunkDataLongerThanSize", kChunkedPost + "5\r\nhello world\r\n0\r\n\r\n"},
      {"ChunkDataBareLf", kChunkedPost + "5\r\nhello\n0\r\n\r\n"},
      // Request line and versions.
      {"Http09RequestLine", "GET /\r\n\r\n"},
      {"Http12", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", {400, 505}},
      {"Http20RequestLine", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", {505}},
      {"Http30RequestLine", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", {400, 505}},
      {"LowercaseHttpVersion", "GET / http/1.1\r\nHost: a\r\n\r\n"},
      {"GarbageVersion", "GET / HTTP/1.x\r\nHost: a\r\n\r\n"},
      // Host.
      {"MissingHostHttp11", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n"},
      {"TwoHostHeaders", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
      {"TwoIdenticalHostHeaders", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"},
      // Methods and targets.
      {"Connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", {501}},
      {"UnknownMethodToken", "FROB / HTTP/1.1\r\nHost: a\r\n\r\n", {501}},
      {"GarbageMethod", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"ControlByteMethod", "\x01GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"AsteriskFormGet", "GET * HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"AuthorityFormGet", "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"AbsoluteFormWithUserinfo", "GET http://evil@good/ HTTP/1.1\r\nHost: good\r\n\r\n"},
      {"AbsoluteFormWithoutHost", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"HostWithSlash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
      // Header section over max_request_headers_size (4 KiB here).
      {"OversizedHeaderValue",
       "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(6000, 'v') + "\r\n\r\n",
       {431}},
      {"OversizedManyHeaders",
       [] {
         std::string s = "GET / HTTP/1.1\r\nHost: a\r\n";
         for (int i = 0; i < 200; ++i)
           s += "X-H" + std::to_string(i) + ": " + std::string(40, 'h') + "\r\n";
         return s + "\r\n";
       }(),
       {431}},
      {"OversizedTarget", "GET /" + std::string(8000, 'p') + " HTTP/1.1\r\nHost: a\r\n\r\n", {414}},
  };
}

void PrintTo(const BadRequest& b, std::ostream* os) {
  *os << b.name;
}

class BadRequestTest : public FramingTest, public ::testing::WithParamInterface<BadRequest> {};

TEST_P(BadRequestTest, RejectedAndClosedWithoutReachingUpstream) {
  expectRejected(GetParam().bytes, GetParam().statuses);
}

INSTANTIATE_TEST_SUITE_P(Framing, BadRequestTest, ::testing::ValuesIn(badRequests()),
                         [](const ::testing::TestParamInfo<BadRequest>& p) {
                           return p.param.name;
                         });

// ---- accepted forms ------------------------------------------------------------------------

TEST_F(FramingTest, AbsoluteFormBecomesOriginFormWithItsHost) {
  RawConnection c(proxy_->port());
  ASSERT_TRUE(c.send("GET http://other/x?q=1 HTTP/1.1\r\nHost: test\r\n\r\n"));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto reqs = upstream_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].target, "/x?q=1");
  EXPECT_EQ(reqs[0].header("host"), "other");
  EXPECT_EQ(reqs[0].count("host"), 1u);
}

TEST_F(FramingTest, RequestWithoutHostGetsTheUpstreamsAuthority) {
  // HTTP/1.0 may omit Host and an empty one is valid, but the HTTP/1.1 request sent upstream
  // must carry one.
  for (const std::string request :
       {"GET /ten HTTP/1.0\r\n\r\n", "GET /empty HTTP/1.1\r\nHost:\r\n\r\n"}) {
    SCOPED_TRACE(printable(request));
    const size_t before = upstream_.requestCount();
    RawConnection c(proxy_->port());
    ASSERT_TRUE(c.send(request));
    auto r = c.readResponse();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    auto reqs = upstream_.requests();
    ASSERT_EQ(reqs.size(), before + 1);
    EXPECT_EQ(reqs.back().count("host"), 1u);
    EXPECT_EQ(reqs.back().header("host"), "127.0.0.1:" + std::to_string(upstream_.port()));
  }
}

TEST_F(FramingTest, HeadJustUnderTheLimitIsAccepted) {
  // The 431 cases above are about size alone: 3 KiB of headers under a 4 KiB limit pass.
  auto r = httpRequest(proxy_->port(), "GET", "/fits", {{"X-Big", std::string(3000, 'v')}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto reqs = upstream_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].header("x-big").size(), 3000u);
}

TEST_F(FramingTest, WellFormedChunkedRequestIsAccepted) {
  // The control for the chunk cases: same request, valid framing, extension and trailer.
  RawConnection c(proxy_->port());
  ASSERT_TRUE(c.send(kChunkedPost + "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"));
  auto r = c.readResponse();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto reqs = upstream_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].body, "hello world");
}

// ---- smuggling -----------------------------------------------------------------------------

const std::string kSmuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

struct SmugglingAttempt {
  std::string name;
  std::string bytes;
};

std::vector<SmugglingAttempt> smugglingAttempts() {
  const std::string te_body = hex(kSmuggled.size()) + "\r\n" + kSmuggled + "\r\n0\r\n\r\n";
  return {
      // CL.TE: a CL-framing hop would forward the whole thing as one body; a TE-framing hop
      // would end the body at "0" and treat /smuggled as the next request.
      {"ClTe", "POST /legit HTTP/1.1\r\nHost: a\r\nContent-Length: " +
                   std::to_string(5 + kSmuggled.size()) +
                   "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + kSmuggled},
      // TE.CL: the chunk holds /smuggled; a CL-framing hop would stop after 4 bytes.
      {"TeCl",
       "POST /legit HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: "
       "4\r\n\r\n" +
           te_body},
      // TE.TE: a second, unrecognised Transfer-Encoding one hop may ignore.
      {"TeTeObfuscated",
       "POST /legit HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: cow\r\nContent-Length: 4\r\n\r\n" +
           te_body},
      {"TeWithSpaceBeforeColon",
       "POST /legit HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: "
       "4\r\n\r\n" +
           te_body},
      {"TeWithLeadingSpaceInName",
       "POST /legit HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n Transfer-Encoding: "
       "chunked\r\n\r\n" +
           te_body},
      {"ClCl", "POST /legit HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: " +
                   std::to_string(kSmuggled.size()) + "\r\n\r\n" + kSmuggled},
      {"TeInHttp10WithCl",
       "POST /legit HTTP/1.0\r\nHost: a\r\nContent-Length: 4\r\n"
       "Transfer-Encoding: chunked\r\n\r\n" +
           te_body},
      {"TeGzipChunkedWithCl",
       "POST /legit HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
       "Transfer-Encoding: gzip, chunked\r\n\r\n" +
           te_body},
  };
}

void PrintTo(const SmugglingAttempt& s, std::ostream* os) {
  *os << s.name;
}

class SmugglingTest : public FramingTest, public ::testing::WithParamInterface<SmugglingAttempt> {};

TEST_P(SmugglingTest, HiddenRequestNeverReachesUpstream) {
  SCOPED_TRACE("request bytes: " + printable(GetParam().bytes));
  RawConnection c(proxy_->port());
  ASSERT_TRUE(c.send(GetParam().bytes));
  auto r = c.readResponse(false, std::chrono::seconds(3));
  expectErrorReply(r, {400});
  // Nothing after the error: no second response for the hidden request.
  const std::string rest = c.readAll(std::chrono::seconds(3));
  EXPECT_EQ(rest, "") << "bytes after the error reply";
  proxy_->accessLog(1);
  auto reqs = upstream_.requests();
  EXPECT_LE(reqs.size(), 1u);
  for (const auto& req : reqs) {
    EXPECT_NE(req.target, "/smuggled");
    EXPECT_EQ(req.body.find("/smuggled"), std::string::npos) << "smuggled bytes were forwarded";
  }
  EXPECT_EQ(reqs.size(), 0u) << "an ambiguous request reached the upstream";
}

INSTANTIATE_TEST_SUITE_P(Framing, SmugglingTest, ::testing::ValuesIn(smugglingAttempts()),
                         [](const ::testing::TestParamInfo<SmugglingAttempt>& p) {
                           return p.param.name;
                         });

// ---- a good request, then a bad one, in one packet -------------------------------------------

TEST_F(FramingTest, ValidRequestThenMalformedOneInSamePacket) {
  RawConnection c(proxy_->port());
  ASSERT_TRUE(c.send(
      "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy"));
  auto first = c.readResponse();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(nlohmann::json::parse(first->body)["target"], "/first");
  auto second = c.readResponse(false, std::chrono::seconds(3));
  expectErrorReply(second, {400});
  EXPECT_TRUE(c.waitClosed(std::chrono::seconds(3)));
  auto log = proxy_->accessLog(2);
  ASSERT_EQ(log.size(), 2u);
  auto reqs = upstream_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].target, "/first");
}

TEST_F(FramingTest, ValidChunkedRequestThenGarbageInSamePacket) {
  RawConnection c(proxy_->port());
  ASSERT_TRUE(c.send(kChunkedPost + "3\r\nabc\r\n0\r\n\r\nGET /x HTTP/1.1\nHost: a\n\n"));
  auto first = c.readResponse();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  auto second = c.readResponse(false, std::chrono::seconds(3));
  expectErrorReply(second, {400});
  EXPECT_TRUE(c.waitClosed(std::chrono::seconds(3)));
  proxy_->accessLog(2);
  auto reqs = upstream_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].target, "/upload");
  EXPECT_EQ(reqs[0].body, "abc");
}

}  // namespace
}  // namespace viscount::test
