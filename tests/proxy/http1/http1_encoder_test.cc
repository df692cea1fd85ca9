// The HTTP/1.1 serialisers: request heads to an upstream, response heads for each body framing,
// informational responses, chunked framing with trailers, and reason phrases.

#include "proxy/http1/http1_encoder.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "proxy/http1/http1_parser.h"
#include "tests/proxy/test_printers.h"

namespace viscount {
namespace {

// A request head as the Exchange would have it after the filters ran.
struct RequestSpec {
  std::string method = "GET";
  std::string target = "/";
  std::string authority = "example.com";
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> removed;  // header names present but marked removed
  std::optional<uint64_t> content_length;
  bool chunked = false;
};

std::string encodeRequest(const RequestSpec& spec) {
  RequestHead head;
  head.method = spec.method;
  head.target = spec.target;
  head.authority = spec.authority;
  head.scheme = "http";
  for (const auto& [name, value] : spec.headers)
    head.headers.add(name, value);
  for (const std::string& name : spec.removed) {
    head.headers.add(name, "dropped");
    head.headers.fields().back().removed = true;
  }
  head.content_length = spec.content_length;
  head.chunked = spec.chunked;
  UpstreamRequest req;
  req.assign(head);
  Buffer out;
  encodeRequestHead(out, req);
  return std::string(out.view());
}

std::string responseHead(int status, const HeaderList& headers, BodyFraming framing,
                         uint64_t length = 0, bool close = false, bool keep_alive_10 = false) {
  Buffer out;
  encodeResponseHead(out, status, headers, framing, length, close, keep_alive_10);
  return std::string(out.view());
}

HeaderList sampleHeaders() {
  HeaderList h;
  h.add("content-type", "text/plain");
  h.add("x-dropped", "no");
  h.fields().back().removed = true;
  h.add("x-request-id", "abc");
  return h;
}

// ---- request heads -----------------------------------------------------------------------------

TEST(Http1EncoderTest, RequestHeadHasHostFirstThenHeadersInOrder) {
  RequestSpec spec;
  spec.target = "/p?q=1";
  spec.headers = {{"accept", "*/*"}, {"X-Mixed-Case", "Value"}, {"accept", "text/html"}};
  spec.removed = {"connection"};
  spec.content_length = 0;
  EXPECT_EQ(encodeRequest(spec),
            "GET /p?q=1 HTTP/1.1\r\n"
            "host: example.com\r\n"
            "accept: */*\r\n"
            "X-Mixed-Case: Value\r\n"
            "accept: text/html\r\n"
            "\r\n");
}

TEST(Http1EncoderTest, RequestWithoutAuthorityHasNoHost) {
  RequestSpec spec;
  spec.authority = "";
  spec.target = "*";
  spec.method = "OPTIONS";
  EXPECT_EQ(encodeRequest(spec), "OPTIONS * HTTP/1.1\r\n\r\n");
}

TEST(Http1EncoderTest, ZeroContentLengthOnlyForMethodsThatCarryBodies) {
  for (const char* method : {"POST", "PUT", "PATCH"}) {
    RequestSpec spec;
    spec.method = method;
    spec.content_length = 0;
    EXPECT_EQ(encodeRequest(spec), std::string(method) +
                                       " / HTTP/1.1\r\nhost: example.com\r\n"
                                       "content-length: 0\r\n\r\n")
        << method;
  }
  for (const char* method : {"GET", "HEAD", "DELETE", "OPTIONS"}) {
    RequestSpec spec;
    spec.method = method;
    spec.content_length = 0;
    EXPECT_EQ(encodeRequest(spec), std::string(method) + " / HTTP/1.1\r\nhost: example.com\r\n\r\n")
        << method;
  }
}

TEST(Http1EncoderTest, NonZeroContentLengthForAnyMethod) {
  for (const char* method : {"GET", "POST", "DELETE"}) {
    RequestSpec spec;
    spec.method = method;
    spec.content_length = 1234567;
    EXPECT_EQ(encodeRequest(spec), std::string(method) +
                                       " / HTTP/1.1\r\nhost: example.com\r\n"
                                       "content-length: 1234567\r\n\r\n")
        << method;
  }
}

TEST(Http1EncoderTest, UnknownLengthWithoutChunkedSaysNothing) {
  RequestSpec spec;
  spec.method = "POST";
  EXPECT_EQ(encodeRequest(spec), "POST / HTTP/1.1\r\nhost: example.com\r\n\r\n");
}

TEST(Http1EncoderTest, ChunkedRequestSaysTransferEncodingOnly) {
  RequestSpec spec;
  spec.method = "POST";
  spec.chunked = true;
  spec.content_length = 10;  // contradicting facts: chunked wins
  spec.headers = {{"x-a", "1"}};
  EXPECT_EQ(encodeRequest(spec),
            "POST / HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n");
}

TEST(Http1EncoderTest, PeerFramingHeadersAreNeverCopied) {
  // The parser marks the client's framing headers removed; the encoder rebuilds framing itself.
  RequestSpec spec;
  spec.method = "PUT";
  spec.removed = {"Content-Length", "Transfer-Encoding"};
  spec.content_length = 3;
  EXPECT_EQ(encodeRequest(spec),
            "PUT / HTTP/1.1\r\nhost: example.com\r\ncontent-length: 3\r\n\r\n");
}

// ---- response heads ----------------------------------------------------------------------------

TEST(Http1EncoderTest, ResponseHeadForEachFraming) {
  const HeaderList h = sampleHeaders();
  const std::string prefix = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-request-id: abc\r\n";
  EXPECT_EQ(responseHead(200, h, BodyFraming::kNone), prefix + "\r\n");
  EXPECT_EQ(responseHead(200, h, BodyFraming::kContentLength, 42),
            prefix + "content-length: 42\r\n\r\n");
  EXPECT_EQ(responseHead(200, h, BodyFraming::kContentLength, 0),
            prefix + "content-length: 0\r\n\r\n");
  EXPECT_EQ(responseHead(200, h, BodyFraming::kChunked),
            prefix + "transfer-encoding: chunked\r\n\r\n");
  EXPECT_EQ(responseHead(200, h, BodyFraming::kUntilClose, 0, true),
            prefix + "connection: close\r\n\r\n");
}

TEST(Http1EncoderTest, ContentLengthIgnoredUnlessThatIsTheFraming) {
  const HeaderList h;
  EXPECT_EQ(responseHead(204, h, BodyFraming::kNone, 99), "HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_EQ(responseHead(200, h, BodyFraming::kChunked, 99),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
}

TEST(Http1EncoderTest, ConnectionHeaderForCloseAndHttp10KeepAlive) {
  const HeaderList h;
  EXPECT_EQ(responseHead(404, h, BodyFraming::kContentLength, 5, true),
            "HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\nconnection: close\r\n\r\n");
  EXPECT_EQ(responseHead(200, h, BodyFraming::kContentLength, 5, false, true),
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\n");
  // Closing wins over an HTTP/1.0 client's wish to keep the connection.
  EXPECT_EQ(responseHead(200, h, BodyFraming::kContentLength, 5, true, true),
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n");
}

TEST(Http1EncoderTest, ResponseHeadWithUnknownStatus) {
  EXPECT_EQ(responseHead(299, HeaderList(), BodyFraming::kNone), "HTTP/1.1 299 Success\r\n\r\n");
  EXPECT_EQ(responseHead(599, HeaderList(), BodyFraming::kNone),
            "HTTP/1.1 599 Server Error\r\n\r\n");
}

TEST(Http1EncoderTest, Informational) {
  HeaderList h;
  h.add("link", "</a.css>; rel=preload");
  h.add("x-gone", "1");
  h.fields().back().removed = true;
  Buffer out;
  encodeInformational(out, 103, &h);
  EXPECT_EQ(out.view(), "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n");
  Buffer cont;
  encodeInformational(cont, 100, nullptr);
  EXPECT_EQ(cont.view(), "HTTP/1.1 100 Continue\r\n\r\n");
}

// ---- chunked framing ---------------------------------------------------------------------------

TEST(Http1EncoderTest, ChunksUseLowercaseHexSizes) {
  Buffer out;
  encodeChunk(out, "hello");
  EXPECT_EQ(out.view(), "5\r\nhello\r\n");

  Buffer big;
  const std::string data(255, 'z');
  encodeChunk(big, data);
  EXPECT_EQ(big.view(), "ff\r\n" + data + "\r\n");

  Buffer larger;
  const std::string more(70000, 'y');
  encodeChunk(larger, more);
  EXPECT_EQ(larger.view().substr(0, 7), "11170\r\n");
  EXPECT_EQ(larger.size(), 7 + more.size() + 2);
}

TEST(Http1EncoderTest, EmptyChunkWritesNothing) {
  Buffer out;
  encodeChunk(out, "");
  EXPECT_TRUE(out.empty()) << "an empty chunk would end the body early";
}

TEST(Http1EncoderTest, LastChunkWithAndWithoutTrailers) {
  Buffer plain;
  encodeLastChunk(plain, nullptr);
  EXPECT_EQ(plain.view(), "0\r\n\r\n");

  HeaderList empty;
  Buffer no_fields;
  encodeLastChunk(no_fields, &empty);
  EXPECT_EQ(no_fields.view(), "0\r\n\r\n");

  HeaderList trailers;
  trailers.add("x-checksum", "abc");
  trailers.add("x-secret", "drop me");
  trailers.fields().back().removed = true;
  trailers.add("x-count", "3");
  Buffer out;
  encodeLastChunk(out, &trailers);
  EXPECT_EQ(out.view(), "0\r\nx-checksum: abc\r\nx-count: 3\r\n\r\n");
}

class Collect : public Http1ParserHandler {
 public:
  bool onHeadersComplete(Http1Head& head) override {
    status = head.status;
    chunked = head.chunked;
    return true;
  }
  void onBody(std::string_view data) override { body.append(data); }
  void onTrailers(HeaderList& t) override {
    for (const auto& f : t.fields())
      trailers.emplace_back(f.name, f.value);
  }
  bool onMessageComplete() override {
    complete = true;
    return false;
  }
  int status = 0;
  bool chunked = false;
  std::string body;
  std::vector<std::pair<std::string, std::string>> trailers;
  bool complete = false;
};

TEST(Http1EncoderTest, ChunkedResponseParsesBack) {
  Buffer out;
  HeaderList h;
  h.add("trailer", "x-sum");
  encodeResponseHead(out, 200, h, BodyFraming::kChunked, 0, false, false);
  encodeChunk(out, "first ");
  encodeChunk(out, std::string(300, 'm'));
  encodeChunk(out, " last");
  HeaderList trailers;
  trailers.add("x-sum", "42");
  encodeLastChunk(out, &trailers);

  Collect c;
  Http1Parser parser(Http1Parser::Kind::kResponse, c);
  const auto r = parser.execute(out.data(), 0, out.size());
  ASSERT_EQ(r.status, Http1Parser::Status::kOk) << parser.errorReason();
  EXPECT_EQ(c.status, 200);
  EXPECT_TRUE(c.chunked);
  EXPECT_EQ(c.body, "first " + std::string(300, 'm') + " last");
  EXPECT_EQ(c.trailers, (std::vector<std::pair<std::string, std::string>>{{"x-sum", "42"}}));
  EXPECT_TRUE(c.complete);
}

// ---- numbers and reason phrases ----------------------------------------------------------------

TEST(Http1EncoderTest, AppendDecimal) {
  for (uint64_t v : {uint64_t{0}, uint64_t{7}, uint64_t{10}, uint64_t{1234567890},
                     std::numeric_limits<uint64_t>::max()}) {
    Buffer out;
    appendDecimal(out, v);
    EXPECT_EQ(out.view(), std::to_string(v));
  }
}

TEST(Http1EncoderTest, ReasonPhrasesForCommonCodes) {
  const std::vector<std::pair<int, std::string>> known = {
      {100, "Continue"},
      {101, "Switching Protocols"},
      {103, "Early Hints"},
      {200, "OK"},
      {201, "Created"},
      {204, "No Content"},
      {206, "Partial Content"},
      {301, "Moved Permanently"},
      {302, "Found"},
      {304, "Not Modified"},
      {307, "Temporary Redirect"},
      {308, "Permanent Redirect"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {408, "Request Timeout"},
      {413, "Content Too Large"},
      {414, "URI Too Long"},
      {417, "Expectation Failed"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
      {505, "HTTP Version Not Supported"},
  };
  for (const auto& [status, phrase] : known)
    EXPECT_EQ(reasonPhrase(status), phrase) << status;
}

TEST(Http1EncoderTest, ReasonPhrasesForUnknownCodesNameTheClass) {
  EXPECT_EQ(reasonPhrase(150), "Informational");
  EXPECT_EQ(reasonPhrase(299), "Success");
  EXPECT_EQ(reasonPhrase(399), "Redirection");
  EXPECT_EQ(reasonPhrase(418), "Client Error");
  EXPECT_EQ(reasonPhrase(499), "Client Error");
  EXPECT_EQ(reasonPhrase(599), "Server Error");
}

}  // namespace
}  // namespace viscount
