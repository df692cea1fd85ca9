// Http1Parser on its own: what it reports for request and response heads, bodies and trailers,
// how it behaves when bytes arrive in pieces, pipelining pauses, and every rejection it adds on
// top of llhttp.

#include "proxy/http1/http1_parser.h"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "tests/proxy/http1/http1_recorder.h"
#include "tests/proxy/test_printers.h"

namespace viscount {
namespace {

using Kind = Http1Parser::Kind;
using Status = Http1Parser::Status;
using test::Field;
using test::Message;
using test::Recorder;

using ParserTest = test::ParserFixture;

// ---- request heads -----------------------------------------------------------------------------

TEST_F(ParserTest, RequestLineHostAndHeadersInOrder) {
  const std::string req =
      "GET /a/b?c=1&d HTTP/1.1\r\n"
      "Host: example.com:8080\r\n"
      "Accept: */*\r\n"
      "X-Multi: one\r\n"
      "x-multi: two\r\n"
      "\r\n";
  const auto r = feed(request_parser_, req);
  EXPECT_EQ(r.status, Status::kOk);
  EXPECT_EQ(r.consumed, req.size());
  ASSERT_EQ(recorder_.messages.size(), 1u);
  const Message& m = recorder_.messages[0];
  EXPECT_TRUE(m.complete);
  EXPECT_EQ(m.method, "GET");
  EXPECT_EQ(m.target, "/a/b?c=1&d");
  EXPECT_EQ(m.host, "example.com:8080");
  EXPECT_EQ(m.version_minor, 1);
  EXPECT_EQ(m.headers, (std::vector<Field>{
                           {"Accept", "*/*", false},
                           {"X-Multi", "one", false},
                           {"x-multi", "two", false},
                       }));
  EXPECT_EQ(m.content_length, 0u);
  EXPECT_FALSE(m.chunked);
  EXPECT_TRUE(m.keep_alive);
  EXPECT_FALSE(m.expect_continue);
  EXPECT_TRUE(m.body.empty());
  EXPECT_FALSE(recorder_.views_outside_input) << "header views must point into the input";
  EXPECT_EQ(request_parser_.error(), ErrorCode::kNone);
}

TEST_F(ParserTest, HostFormsThatAreAccepted) {
  for (const std::string host : {"example.com", "example.com:8080", "127.0.0.1:80", "[::1]",
                                 "[::1]:8080", "under_score.example", "a%2Db", "a:", ""}) {
    Recorder rec;
    Http1Parser parser(Kind::kRequest, rec);
    const std::string req = "GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
    ASSERT_EQ(parser.execute(req.data(), 0, req.size()).status, Status::kOk)
        << host << ": " << parser.errorReason();
    EXPECT_EQ(rec.messages.at(0).host, host);
  }
}

TEST_F(ParserTest, HeaderValuesAreTrimmedOfOptionalWhitespace) {
  const std::string req =
      "GET / HTTP/1.1\r\nHost:   h  \r\nX-Spaced: \t inner  value \t\r\nX-Tight:v\r\n\r\n";
  ASSERT_EQ(feed(request_parser_, req).status, Status::kOk);
  const Message& m = recorder_.messages.at(0);
  EXPECT_EQ(m.host, "h");
  EXPECT_EQ(m.headers,
            (std::vector<Field>{{"X-Spaced", "inner  value", false}, {"X-Tight", "v", false}}));
}

TEST_F(ParserTest, EmptyHeaderValueIsAccepted) {
  // RFC 9110 section 5.5: a field value may be empty; it is not a folded line.
  const std::string req =
      "GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Blank: \r\nX-After: 1\r\n\r\n";
  const auto r = feed(request_parser_, req);
  ASSERT_EQ(r.status, Status::kOk) << request_parser_.errorReason();
  EXPECT_EQ(recorder_.messages.at(0).headers,
            (std::vector<Field>{
                {"X-Empty", "", false}, {"X-Blank", "", false}, {"X-After", "1", false}}));
}

TEST_F(ParserTest, EmptyHeaderValueInResponseIsAccepted) {
  const std::string resp = "HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n";
  const auto r = feed(response_parser_, resp);
  ASSERT_EQ(r.status, Status::kOk) << response_parser_.errorReason();
  EXPECT_EQ(recorder_.messages.at(0).headers,
            (std::vector<Field>{{"X-Empty", "", false}, {"Content-Length", "0", true}}));
}

TEST_F(ParserTest, ContentLengthBodyAndHeaderMarkedRemoved) {
  const std::string req =
      "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello";
  ASSERT_EQ(feed(request_parser_, req).status, Status::kOk);
  const Message& m = recorder_.messages.at(0);
  EXPECT_EQ(m.method, "POST");
  EXPECT_EQ(m.content_length, 5u);
  EXPECT_FALSE(m.chunked);
  EXPECT_EQ(m.body, "hello");
  EXPECT_TRUE(m.complete);
  EXPECT_EQ(m.headers, (std::vector<Field>{{"Content-Length", "5", true}, {"X-A", "1", false}}));
}

TEST_F(ParserTest, ChunkedBodyAndTransferEncodingMarkedRemoved) {
  const std::string req =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
  ASSERT_EQ(feed(request_parser_, req).status, Status::kOk);
  const Message& m = recorder_.messages.at(0);
  EXPECT_TRUE(m.chunked);
  EXPECT_FALSE(m.content_length.has_value());
  EXPECT_EQ(m.body, "hello world");
  EXPECT_TRUE(m.complete);
  EXPECT_FALSE(m.trailers_seen);
  EXPECT_EQ(m.headers, (std::vector<Field>{{"Transfer-Encoding", "chunked", true}}));
}

TEST_F(ParserTest, KeepAliveFollowsVersionAndConnection) {
  struct Case {
    std::string head;
    bool keep_alive;
    int minor;
  };
  const std::vector<Case> cases = {
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true, 1},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false, 1},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", true, 1},
      {"GET / HTTP/1.0\r\n\r\n", false, 0},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, 0},
      {"GET / HTTP/1.0\r\nHost: h\r\nConnection: close\r\n\r\n", false, 0},
  };
  for (const Case& c : cases) {
    Recorder rec;
    Http1Parser parser(Kind::kRequest, rec);
    const auto r = parser.execute(c.head.data(), 0, c.head.size());
    ASSERT_EQ(r.status, Status::kOk) << c.head;
    ASSERT_EQ(rec.messages.size(), 1u) << c.head;
    EXPECT_EQ(rec.messages[0].keep_alive, c.keep_alive) << c.head;
    EXPECT_EQ(rec.messages[0].version_minor, c.minor) << c.head;
  }
}

TEST_F(ParserTest, ExpectContinueIsReportedAndItsHeaderRemoved) {
  const std::string req =
      "PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
  ASSERT_EQ(feed(request_parser_, req).status, Status::kOk);
  const Message& m = recorder_.messages.at(0);
  EXPECT_TRUE(m.expect_continue);
  EXPECT_FALSE(m.complete) << "the body has not arrived yet";
  EXPECT_EQ(m.headers,
            (std::vector<Field>{{"Expect", "100-Continue", true}, {"Content-Length", "3", true}}));
}

TEST_F(ParserTest, ExpectContinueFromHttp10ClientIsIgnored) {
  // An HTTP/1.0 client does not understand 100 Continue.
  const std::string req = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n";
  ASSERT_EQ(feed(request_parser_, req).status, Status::kOk);
  EXPECT_FALSE(recorder_.messages.at(0).expect_continue);
}

TEST_F(ParserTest, AsteriskTargetOnlyForOptions) {
  const std::string ok = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_EQ(feed(request_parser_, ok).status, Status::kOk);
  EXPECT_EQ(recorder_.messages.at(0).target, "*");

  Recorder rec;
  Http1Parser parser(Kind::kRequest, rec);
  const std::string bad = "GET * HTTP/1.1\r\nHost: h\r\n\r\n";
  EXPECT_EQ(parser.execute(bad.data(), 0, bad.size()).status, Status::kError);
  EXPECT_EQ(parser.error(), ErrorCode::kBadRequest);
}

TEST_F(ParserTest, HandlerCanStopTheParseFromHeadersComplete) {
  recorder_.parser_to_fail = &request_parser_;
  const std::string req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  EXPECT_EQ(feed(request_parser_, req).status, Status::kError);
  EXPECT_EQ(request_parser_.error(), ErrorCode::kInternalError) << "the handler's error is kept";
  EXPECT_EQ(request_parser_.errorReason(), "refused by the handler");
  EXPECT_FALSE(recorder_.messages.at(0).complete);
}

// ---- bytes in pieces ---------------------------------------------------------------------------

TEST_F(ParserTest, ByteAtATimeGivesTheSameResultAsOneCall) {
  const std::vector<std::string> requests = {
      "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1.0\r\n"
      "Accept:   text/html, */*  \r\nCookie: a=b; c=d\r\n\r\n",
      "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
      "\r\nhello world",
      "PATCH /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-Long-Header-Name: "
      "a value with several words in it\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n"
      "X-Checksum: abc\r\nX-Other: two words \r\n\r\n",
      "\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
  };
  // The bytes so far stay in one growing buffer that moves as it grows, and each call passes its
  // current start as base, the way a connection keeps an unfinished head.
  for (const std::string& req : requests) {
    Recorder whole;
    Http1Parser whole_parser(Kind::kRequest, whole);
    whole.setInput(req.data(), req.size());
    ASSERT_EQ(whole_parser.execute(req.data(), 0, req.size()).status, Status::kOk) << req;
    ASSERT_EQ(whole.messages.size(), 1u);
    ASSERT_TRUE(whole.messages[0].complete) << req;

    Recorder bytewise;
    Http1Parser bytewise_parser(Kind::kRequest, bytewise);
    std::string fed;
    for (char c : req) {
      fed.push_back(c);
      fed.shrink_to_fit();
      bytewise.setInput(fed.data(), fed.size());
      const auto r = bytewise_parser.execute(fed.data(), fed.size() - 1, 1);
      ASSERT_EQ(r.status, Status::kOk)
          << "after " << fed.size() << " bytes: " << bytewise_parser.errorReason() << "\n"
          << req;
    }
    ASSERT_EQ(bytewise.messages.size(), 1u);
    EXPECT_EQ(bytewise.messages[0], whole.messages[0]) << req;
    EXPECT_EQ(bytewise.messages[0].headers, whole.messages[0].headers) << req;
    EXPECT_FALSE(bytewise.views_outside_input) << req;
  }
}

TEST_F(ParserTest, HeadSplitAtEveryPositionParsesTheSame) {
  const std::string req =
      "GET /split HTTP/1.1\r\nHost: h\r\nX-A: alpha\r\nX-B: beta gamma\r\nContent-Length: 2\r\n"
      "\r\nok";
  Recorder whole;
  Http1Parser whole_parser(Kind::kRequest, whole);
  ASSERT_EQ(whole_parser.execute(req.data(), 0, req.size()).status, Status::kOk);
  for (size_t cut = 1; cut < req.size(); ++cut) {
    Recorder rec;
    Http1Parser parser(Kind::kRequest, rec);
    std::string buf = req.substr(0, cut);
    ASSERT_EQ(parser.execute(buf.data(), 0, buf.size()).status, Status::kOk) << cut;
    buf.append(req, cut);
    buf.shrink_to_fit();
    ASSERT_EQ(parser.execute(buf.data(), cut, buf.size() - cut).status, Status::kOk) << cut;
    ASSERT_EQ(rec.messages.size(), 1u) << cut;
    EXPECT_EQ(rec.messages[0], whole.messages.at(0)) << "split at " << cut;
  }
}

TEST_F(ParserTest, InHeadersAndMessageStartedTrackTheHead) {
  EXPECT_TRUE(request_parser_.inHeaders());
  EXPECT_FALSE(request_parser_.messageStarted());
  std::string buf = "POST / HTTP/1.1\r\nHost: h\r\n";
  recorder_.setInput(buf.data(), buf.size());
  ASSERT_EQ(request_parser_.execute(buf.data(), 0, buf.size()).status, Status::kOk);
  EXPECT_TRUE(request_parser_.inHeaders());
  EXPECT_TRUE(request_parser_.messageStarted());
  EXPECT_EQ(request_parser_.headBytes(), buf.size());
  const size_t before = buf.size();
  buf += "Content-Length: 4\r\n\r\nab";
  recorder_.setInput(buf.data(), buf.size());
  ASSERT_EQ(request_parser_.execute(buf.data(), before, buf.size() - before).status, Status::kOk);
  EXPECT_FALSE(request_parser_.inHeaders());
  EXPECT_TRUE(request_parser_.messageStarted());
  const std::string rest = "cd";
  ASSERT_EQ(request_parser_.execute(rest.data(), 0, rest.size()).status, Status::kOk);
  EXPECT_TRUE(request_parser_.inHeaders());
  EXPECT_FALSE(request_parser_.messageStarted());
  EXPECT_EQ(recorder_.messages.at(0).body, "abcd");
}

// ---- pipelining --------------------------------------------------------------------------------

TEST_F(ParserTest, PausesAfterEachPipelinedRequestAndResumes) {
  recorder_.pause_after_message = true;
  const std::string first = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string second = "POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  const std::string third = "GET /three HTTP/1.1\r\nHo";
  std::string buf = first + second + third;

  auto r = feed(request_parser_, buf);
  ASSERT_EQ(r.status, Status::kPaused);
  EXPECT_EQ(r.consumed, first.size());
  ASSERT_EQ(recorder_.messages.size(), 1u);
  EXPECT_EQ(recorder_.messages[0].target, "/one");
  EXPECT_TRUE(recorder_.messages[0].complete);

  // The connection drops the finished request and parses the rest from its new start.
  buf.erase(0, r.consumed);
  request_parser_.resume();
  r = feed(request_parser_, buf);
  ASSERT_EQ(r.status, Status::kPaused);
  EXPECT_EQ(r.consumed, second.size());
  ASSERT_EQ(recorder_.messages.size(), 2u);
  EXPECT_EQ(recorder_.messages[1].method, "POST");
  EXPECT_EQ(recorder_.messages[1].target, "/two");
  EXPECT_EQ(recorder_.messages[1].body, "abc");
  EXPECT_TRUE(recorder_.messages[1].complete);

  buf.erase(0, r.consumed);
  request_parser_.resume();
  r = feed(request_parser_, buf);
  ASSERT_EQ(r.status, Status::kOk);
  EXPECT_EQ(r.consumed, third.size());
  EXPECT_TRUE(request_parser_.inHeaders());
  EXPECT_TRUE(request_parser_.messageStarted());

  const size_t had = buf.size();
  buf += "st: h\r\n\r\n";
  recorder_.setInput(buf.data(), buf.size());
  r = request_parser_.execute(buf.data(), had, buf.size() - had);
  ASSERT_EQ(r.status, Status::kPaused);
  ASSERT_EQ(recorder_.messages.size(), 3u);
  EXPECT_EQ(recorder_.messages[2].target, "/three");
  EXPECT_EQ(recorder_.messages[2].host, "h");
}

TEST_F(ParserTest, PipelinedRequestAfterPauseIsStillCheckedForBareLineFeeds) {
  recorder_.pause_after_message = true;
  std::string buf = "GET /ok HTTP/1.1\r\nHost: h\r\n\r\nGET /bad HTTP/1.1\nHost: h\n\n";
  auto r = feed(request_parser_, buf);
  ASSERT_EQ(r.status, Status::kPaused);
  buf.erase(0, r.consumed);
  request_parser_.resume();
  r = feed(request_parser_, buf);
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(request_parser_.error(), ErrorCode::kBadRequest);
}

TEST_F(ParserTest, UpgradeRequestsAreParsedAsPlainHttp) {
  // We never switch protocols, so what follows an Upgrade request is the next HTTP request.
  recorder_.pause_after_message = true;
  const std::string first =
      "POST /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Content-Length: 3\r\n\r\nabc";
  const std::string second = "GET /next HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n";
  std::string buf = first + second;
  auto r = feed(request_parser_, buf);
  ASSERT_EQ(r.status, Status::kPaused) << request_parser_.errorReason();
  EXPECT_EQ(r.consumed, first.size());
  EXPECT_EQ(recorder_.messages.at(0).body, "abc");
  buf.erase(0, r.consumed);
  request_parser_.resume();
  r = feed(request_parser_, buf);
  ASSERT_EQ(r.status, Status::kPaused) << request_parser_.errorReason();
  ASSERT_EQ(recorder_.messages.size(), 2u);
  EXPECT_EQ(recorder_.messages[1].target, "/next");
  EXPECT_TRUE(recorder_.messages[1].complete);
}

TEST_F(ParserTest, EmptyLinesBeforeARequestCanBeDroppedByTheCaller) {
  // A connection drops bytes that belong to no message (here the CRLF a client sent after a
  // body, as RFC 9112 section 2.2 lets it), so the next request arrives in a new buffer.
  recorder_.pause_after_message = true;
  std::string buf = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx\r\n";
  auto r = feed(request_parser_, buf);
  ASSERT_EQ(r.status, Status::kPaused);
  buf.erase(0, r.consumed);
  request_parser_.resume();
  ASSERT_EQ(feed(request_parser_, buf).status, Status::kOk);
  ASSERT_FALSE(request_parser_.messageStarted());
  const std::string next = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  r = feed(request_parser_, next);
  ASSERT_EQ(r.status, Status::kPaused) << request_parser_.errorReason();
  ASSERT_EQ(recorder_.messages.size(), 2u);
  EXPECT_EQ(recorder_.messages[1].target, "/b");
}

TEST_F(ParserTest, CarriageReturnAndLineFeedBeforeARequestMayArriveApart) {
  const std::string cr = "\r";
  ASSERT_EQ(feed(request_parser_, cr).status, Status::kOk);
  ASSERT_FALSE(request_parser_.messageStarted());
  const std::string rest = "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_EQ(feed(request_parser_, rest).status, Status::kOk) << request_parser_.errorReason();
  ASSERT_EQ(recorder_.messages.size(), 1u);
  EXPECT_TRUE(recorder_.messages[0].complete);

  // A CR whose next byte is not LF is refused wherever the bytes were split.
  Recorder rec;
  Http1Parser parser(Kind::kRequest, rec);
  ASSERT_EQ(parser.execute(cr.data(), 0, cr.size()).status, Status::kOk);
  const std::string no_lf = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  EXPECT_EQ(parser.execute(no_lf.data(), 0, no_lf.size()).status, Status::kError);
  EXPECT_EQ(parser.error(), ErrorCode::kBadRequest);
}

TEST_F(ParserTest, DroppedEmptyLinesDoNotHideALaterBareLineFeedOrFold) {
  // The line checks once skipped as many bytes of the next buffer as the dropped empty lines
  // had held, letting through what llhttp 8.1 accepts and they exist to refuse.
  for (const std::string head :
       {"GET / HTTP/1.1\nHost: h\r\n\r\n", "GET / HTTP/1.1\r\nHost: h\r\n\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX-A:\r\n b\r\n\r\n"}) {
    Recorder rec;
    Http1Parser parser(Kind::kRequest, rec);
    std::string empty_lines;
    for (int i = 0; i < 30; ++i)
      empty_lines += "\r\n";
    ASSERT_EQ(parser.execute(empty_lines.data(), 0, empty_lines.size()).status, Status::kOk);
    ASSERT_FALSE(parser.messageStarted());
    EXPECT_EQ(parser.execute(head.data(), 0, head.size()).status, Status::kError) << head;
    EXPECT_EQ(parser.error(), ErrorCode::kBadRequest) << head;
    EXPECT_TRUE(rec.messages.empty() || !rec.messages[0].head_seen) << head;
  }
}

// ---- rejections (more in http1_parser_rejection_test.cc) ---------------------------------------

TEST_F(ParserTest, BareCarriageReturnIsJudgedOnceTheNextByteArrives) {
  std::string buf = "GET / HTTP/1.1\r\nHost: h\r";
  ASSERT_EQ(feed(request_parser_, buf).status, Status::kOk);
  const size_t had = buf.size();
  buf += "X-A: b\r\n\r\n";
  EXPECT_EQ(request_parser_.execute(buf.data(), had, buf.size() - had).status, Status::kError);
  EXPECT_EQ(request_parser_.error(), ErrorCode::kBadRequest);
}

TEST_F(ParserTest, BareLineFeedsInTheBodyAreData) {
  const std::string req = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\na\nb\rc\n";
  ASSERT_EQ(feed(request_parser_, req).status, Status::kOk) << request_parser_.errorReason();
  EXPECT_EQ(recorder_.messages.at(0).body, "a\nb\rc\n");
}

// ---- trailers ----------------------------------------------------------------------------------

TEST_F(ParserTest, TrailersAreDeliveredBeforeCompletion) {
  const std::string req =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\nX-Checksum: 900150983cd24fb0\r\nX-Note:  spaced out \r\n\r\n";
  ASSERT_EQ(feed(request_parser_, req).status, Status::kOk);
  const Message& m = recorder_.messages.at(0);
  EXPECT_EQ(m.body, "abc");
  EXPECT_TRUE(m.trailers_seen);
  EXPECT_EQ(m.trailers, (std::vector<std::pair<std::string, std::string>>{
                            {"X-Checksum", "900150983cd24fb0"}, {"X-Note", "spaced out"}}));
  EXPECT_TRUE(m.complete);
  // Trailer fields do not leak into the head's header list.
  for (const Field& f : m.headers)
    EXPECT_NE(f.name, "X-Checksum");
}

TEST_F(ParserTest, TrailersOfTwoMessagesDoNotMix) {
  recorder_.pause_after_message = true;
  std::string buf =
      "POST /1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
  auto r = feed(request_parser_, buf);
  ASSERT_EQ(r.status, Status::kPaused);
  buf.erase(0, r.consumed);
  request_parser_.resume();
  ASSERT_EQ(feed(request_parser_, buf).status, Status::kPaused);
  ASSERT_EQ(recorder_.messages.size(), 2u);
  EXPECT_EQ(recorder_.messages[0].trailers.size(), 1u);
  EXPECT_FALSE(recorder_.messages[1].trailers_seen);
}

// ---- responses ---------------------------------------------------------------------------------

TEST_F(ParserTest, ResponseWithContentLength) {
  const std::string resp =
      "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Up: yes\r\nHost: not-special\r\n\r\nhello";
  ASSERT_EQ(feed(response_parser_, resp).status, Status::kOk);
  const Message& m = recorder_.messages.at(0);
  EXPECT_EQ(m.status, 201);
  EXPECT_EQ(m.content_length, 5u);
  EXPECT_FALSE(m.chunked);
  EXPECT_TRUE(m.keep_alive);
  EXPECT_EQ(m.body, "hello");
  EXPECT_TRUE(m.complete);
  EXPECT_EQ(m.headers, (std::vector<Field>{{"Content-Length", "5", true},
                                           {"X-Up", "yes", false},
                                           {"Host", "not-special", false}}));
  EXPECT_TRUE(response_parser_.finish()) << "a close after a complete response is clean";
}

TEST_F(ParserTest, ChunkedResponseWithTrailers) {
  const std::string resp =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "2\r\nok\r\n0\r\nX-Trail: t\r\n\r\n";
  ASSERT_EQ(feed(response_parser_, resp).status, Status::kOk);
  const Message& m = recorder_.messages.at(0);
  EXPECT_TRUE(m.chunked);
  EXPECT_TRUE(m.keep_alive);
  EXPECT_EQ(m.body, "ok");
  EXPECT_EQ(m.trailers, (std::vector<std::pair<std::string, std::string>>{{"X-Trail", "t"}}));
  EXPECT_TRUE(m.complete);
}

TEST_F(ParserTest, InformationalResponsesThenFinalResponse) {
  const std::string resp =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  ASSERT_EQ(feed(response_parser_, resp).status, Status::kOk) << response_parser_.errorReason();
  ASSERT_EQ(recorder_.messages.size(), 3u);
  EXPECT_EQ(recorder_.messages[0].status, 100);
  EXPECT_TRUE(recorder_.messages[0].complete);
  EXPECT_TRUE(recorder_.messages[0].body.empty());
  EXPECT_EQ(recorder_.messages[1].status, 103);
  EXPECT_EQ(recorder_.messages[1].headers,
            (std::vector<Field>{{"Link", "</style.css>; rel=preload", false}}));
  EXPECT_TRUE(recorder_.messages[1].complete);
  EXPECT_EQ(recorder_.messages[2].status, 200);
  EXPECT_EQ(recorder_.messages[2].body, "ok");
  EXPECT_TRUE(recorder_.messages[2].complete);
}

TEST_F(ParserTest, BodilessResponses) {
  struct Case {
    std::string bytes;
    bool to_head;
    int status;
    std::optional<uint64_t> content_length;
  };
  const std::vector<Case> cases = {
      {"HTTP/1.1 204 No Content\r\n\r\n", false, 204, 0},
      {"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", false, 304, 100},
      {"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", false, 304, std::nullopt},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true, 200, 1000},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, 200, std::nullopt},
      {"HTTP/1.1 200 OK\r\n\r\n", true, 200, std::nullopt},
  };
  for (const Case& c : cases) {
    Recorder rec;
    Http1Parser parser(Kind::kResponse, rec);
    parser.setResponseToHead(c.to_head);
    const auto r = parser.execute(c.bytes.data(), 0, c.bytes.size());
    ASSERT_EQ(r.status, Status::kOk) << c.bytes << parser.errorReason();
    ASSERT_EQ(rec.messages.size(), 1u) << c.bytes;
    const Message& m = rec.messages[0];
    EXPECT_EQ(m.status, c.status) << c.bytes;
    EXPECT_TRUE(m.complete) << "no body follows: " << c.bytes;
    EXPECT_FALSE(m.chunked) << c.bytes;
    EXPECT_EQ(m.content_length, c.content_length) << c.bytes;
    EXPECT_TRUE(m.keep_alive) << "the connection stays usable: " << c.bytes;
    EXPECT_TRUE(parser.inHeaders()) << c.bytes;
  }
}

TEST_F(ParserTest, BodilessResponseIsFollowedByTheNextOne) {
  response_parser_.setResponseToHead(true);
  const std::string resp =
      "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
  ASSERT_EQ(feed(response_parser_, resp).status, Status::kOk);
  ASSERT_EQ(recorder_.messages.size(), 2u);
  EXPECT_EQ(recorder_.messages[1].status, 204);
}

TEST_F(ParserTest, CloseDelimitedBodyCompletesOnFinish) {
  std::string buf = "HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nsome ";
  ASSERT_EQ(feed(response_parser_, buf).status, Status::kOk);
  const std::string more = "body";
  ASSERT_EQ(response_parser_.execute(more.data(), 0, more.size()).status, Status::kOk);
  const Message& m = recorder_.messages.at(0);
  EXPECT_FALSE(m.keep_alive) << "the body ends with the connection";
  EXPECT_FALSE(m.chunked);
  EXPECT_FALSE(m.content_length.has_value());
  EXPECT_FALSE(m.complete);
  EXPECT_TRUE(response_parser_.finish());
  EXPECT_TRUE(recorder_.messages.at(0).complete);
  EXPECT_EQ(recorder_.messages.at(0).body, "some body");
}

TEST_F(ParserTest, ResponseKeepAliveFollowsVersionAndConnection) {
  struct Case {
    std::string bytes;
    bool keep_alive;
  };
  const std::vector<Case> cases = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", true},
  };
  for (const Case& c : cases) {
    Recorder rec;
    Http1Parser parser(Kind::kResponse, rec);
    ASSERT_EQ(parser.execute(c.bytes.data(), 0, c.bytes.size()).status, Status::kOk) << c.bytes;
    EXPECT_EQ(rec.messages.at(0).keep_alive, c.keep_alive) << c.bytes;
    EXPECT_TRUE(rec.messages.at(0).complete) << c.bytes;
  }
}

TEST_F(ParserTest, TruncatedBodiesFailOnFinish) {
  for (const std::string resp : {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                                 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                                 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"}) {
    Recorder rec;
    Http1Parser parser(Kind::kResponse, rec);
    ASSERT_EQ(parser.execute(resp.data(), 0, resp.size()).status, Status::kOk) << resp;
    EXPECT_FALSE(parser.finish()) << resp;
    EXPECT_FALSE(rec.messages.at(0).complete) << resp;
  }
}

TEST_F(ParserTest, MalformedChunkAfterAGoodHeadIsAProtocolError) {
  const std::string resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n";
  EXPECT_EQ(feed(response_parser_, resp).status, Status::kError);
  EXPECT_EQ(response_parser_.error(), ErrorCode::kUpstreamProtocolError);
  EXPECT_TRUE(recorder_.messages.at(0).head_seen);
  EXPECT_EQ(recorder_.messages.at(0).body, "ok");
  EXPECT_FALSE(recorder_.messages.at(0).complete);
}

TEST_F(ParserTest, ResponseHeadOverTheLimitIsAProtocolError) {
  response_parser_.setMaxHeadBytes(64);
  const std::string resp = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(200, 'x') + "\r\n\r\n";
  EXPECT_EQ(feed(response_parser_, resp).status, Status::kError);
  EXPECT_EQ(response_parser_.error(), ErrorCode::kUpstreamProtocolError);
}

TEST_F(ParserTest, ResetPreparesForTheNextResponse) {
  response_parser_.setResponseToHead(true);
  const std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
  ASSERT_EQ(feed(response_parser_, first).status, Status::kOk);
  ASSERT_TRUE(recorder_.messages.at(0).complete);

  // The next request is a GET: the response to it has a body again.
  response_parser_.reset();
  const std::string second = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  ASSERT_EQ(feed(response_parser_, second).status, Status::kOk);
  ASSERT_EQ(recorder_.messages.size(), 2u);
  EXPECT_EQ(recorder_.messages[1].body, "abc");
  EXPECT_TRUE(recorder_.messages[1].complete);
}

TEST_F(ParserTest, ResetClearsAnEarlierError) {
  const std::string bad = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
  ASSERT_EQ(feed(response_parser_, bad).status, Status::kError);
  response_parser_.reset();
  EXPECT_EQ(response_parser_.error(), ErrorCode::kNone);
  EXPECT_TRUE(response_parser_.errorReason().empty());
  const std::string good = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  EXPECT_EQ(feed(response_parser_, good).status, Status::kOk);
  EXPECT_TRUE(recorder_.messages.back().complete);
}

}  // namespace
}  // namespace viscount
