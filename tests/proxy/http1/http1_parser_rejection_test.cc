// Http1Parser's rejections: every malformed request and response it refuses on top of llhttp,
// in one call and byte by byte, and the limits on the head (bytes, fields, 414) and trailers.

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "proxy/http1/http1_parser.h"
#include "tests/proxy/http1/http1_recorder.h"
#include "tests/proxy/test_printers.h"

namespace viscount {
namespace {

using Kind = Http1Parser::Kind;
using Status = Http1Parser::Status;
using test::Message;
using test::Recorder;

using ParserLimitsTest = test::ParserFixture;

// ---- requests ----------------------------------------------------------------------------------

struct Rejection {
  const char* name;
  std::string bytes;
  ErrorCode code;
};

std::vector<Rejection> requestRejections() {
  return {
      {"obs_fold_space", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n",
       ErrorCode::kBadRequest},
      {"obs_fold_tab", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n",
       ErrorCode::kBadRequest},
      {"obs_fold_first_header", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", ErrorCode::kBadRequest},
      {"obs_fold_empty_value", "GET / HTTP/1.1\r\nHost: h\r\nX-A:\r\n b\r\n\r\n",
       ErrorCode::kBadRequest},
      {"bare_lf_everywhere", "GET / HTTP/1.1\nHost: h\n\n", ErrorCode::kBadRequest},
      {"bare_lf_in_header", "GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n", ErrorCode::kBadRequest},
      {"bare_lf_end_of_head", "GET / HTTP/1.1\r\nHost: h\r\n\n", ErrorCode::kBadRequest},
      {"bare_cr_in_header", "GET / HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n", ErrorCode::kBadRequest},
      {"bare_cr_in_value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
       ErrorCode::kBadRequest},
      {"te_gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
       ErrorCode::kBadRequest},
      {"te_gzip_chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       ErrorCode::kBadRequest},
      {"te_identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
       ErrorCode::kBadRequest},
      {"te_chunked_twice",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
       "chunked\r\n\r\n0\r\n\r\n",
       ErrorCode::kBadRequest},
      {"te_chunked_then_gzip",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
       "gzip\r\n\r\n",
       ErrorCode::kBadRequest},
      {"te_and_content_length",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       ErrorCode::kBadRequest},
      {"http10_with_te", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ErrorCode::kBadRequest},
      {"http09_version", "GET / HTTP/0.9\r\n\r\n", ErrorCode::kBadRequest},
      {"http09_no_version", "GET /\r\n\r\n", ErrorCode::kBadRequest},
      {"http2_version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", ErrorCode::kVersionNotSupported},
      {"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
       ErrorCode::kNotImplemented},
      {"unknown_method", "BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", ErrorCode::kNotImplemented},
      {"unknown_method_prefix_of_known", "GETS / HTTP/1.1\r\nHost: h\r\n\r\n",
       ErrorCode::kNotImplemented},
      {"lowercase_method", "get / HTTP/1.1\r\nHost: h\r\n\r\n", ErrorCode::kNotImplemented},
      {"garbage_method", "G@T / HTTP/1.1\r\nHost: h\r\n\r\n", ErrorCode::kBadRequest},
      {"binary_garbage", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
       ErrorCode::kBadRequest},
      {"method_without_target", "BREW\r\n\r\n", ErrorCode::kBadRequest},
      // The method is judged from its first byte, after the empty lines a request may follow.
      {"unknown_method_after_empty_lines", "\r\n\r\nBREW /pot HTTP/1.1\r\nHost: h\r\n\r\n",
       ErrorCode::kNotImplemented},
      {"garbage_method_after_empty_lines", "\r\nG@T / HTTP/1.1\r\nHost: h\r\n\r\n",
       ErrorCode::kBadRequest},
      {"missing_host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", ErrorCode::kBadRequest},
      {"duplicate_host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ErrorCode::kBadRequest},
      {"duplicate_host_same_value", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
       ErrorCode::kBadRequest},
      {"duplicate_host_http10", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
       ErrorCode::kBadRequest},
      {"expect_other", "GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n",
       ErrorCode::kExpectationFailed},
      {"expect_continue_with_params",
       "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue; a=b\r\n\r\n",
       ErrorCode::kExpectationFailed},
      {"space_before_colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", ErrorCode::kBadRequest},
      // Host is uri-host [":" port]: nothing the upstream could read as more than a host.
      {"host_with_space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ErrorCode::kBadRequest},
      {"host_with_slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", ErrorCode::kBadRequest},
      {"host_with_userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", ErrorCode::kBadRequest},
      {"host_list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", ErrorCode::kBadRequest},
      {"host_port_not_digits", "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", ErrorCode::kBadRequest},
      {"host_port_too_long", "GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n", ErrorCode::kBadRequest},
      {"host_two_colons", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", ErrorCode::kBadRequest},
      {"host_bad_percent", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", ErrorCode::kBadRequest},
      {"host_unclosed_ipv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", ErrorCode::kBadRequest},
      {"host_high_bytes", "GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", ErrorCode::kBadRequest},
      // A nameless line would otherwise be read as more of the header before it, CRLF included.
      {"empty_field_name", "GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n", ErrorCode::kBadRequest},
      {"empty_field_name_first", "GET / HTTP/1.1\r\n: b\r\nHost: h\r\n\r\n",
       ErrorCode::kBadRequest},
      {"empty_field_name_empty_value", "GET / HTTP/1.1\r\nHost: h\r\n:\r\n\r\n",
       ErrorCode::kBadRequest},
      {"empty_trailer_name",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n: b\r\n\r\n",
       ErrorCode::kBadRequest},
  };
}

void PrintTo(const Rejection& r, std::ostream* os) {
  *os << r.name;
}

std::string rejectionName(const ::testing::TestParamInfo<Rejection>& param_info) {
  return param_info.param.name;
}

class RequestRejectionTest : public ::testing::TestWithParam<Rejection> {};

TEST_P(RequestRejectionTest, RejectedInOneCall) {
  const Rejection& c = GetParam();
  Recorder rec;
  Http1Parser parser(Kind::kRequest, rec);
  const auto r = parser.execute(c.bytes.data(), 0, c.bytes.size());
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(parser.error(), c.code) << parser.errorReason();
  EXPECT_FALSE(parser.errorReason().empty());
  for (const Message& m : rec.messages)
    EXPECT_FALSE(m.complete) << "a rejected request must not complete";
}

TEST_P(RequestRejectionTest, RejectedWhenFedByteAtATime) {
  const Rejection& c = GetParam();
  Recorder rec;
  Http1Parser parser(Kind::kRequest, rec);
  std::string fed;
  Http1Parser::Result r{Status::kOk, 0};
  for (char ch : c.bytes) {
    fed.push_back(ch);
    fed.shrink_to_fit();
    r = parser.execute(fed.data(), fed.size() - 1, 1);
    if (r.status != Status::kOk) break;
  }
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(parser.error(), c.code) << parser.errorReason();
}

INSTANTIATE_TEST_SUITE_P(Http1Parser, RequestRejectionTest,
                         ::testing::ValuesIn(requestRejections()), rejectionName);

// ---- responses ---------------------------------------------------------------------------------

std::vector<Rejection> responseRejections() {
  return {
      {"cl_and_te",
       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ErrorCode::kUpstreamProtocolError},
      {"switching_protocols",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
       ErrorCode::kUpstreamProtocolError},
      {"te_gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz",
       ErrorCode::kUpstreamProtocolError},
      {"te_gzip_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
       ErrorCode::kUpstreamProtocolError},
      {"obs_fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
       ErrorCode::kUpstreamProtocolError},
      {"http2_version", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
       ErrorCode::kUpstreamProtocolError},
      {"status_999", "HTTP/1.1 999 Nope\r\nContent-Length: 0\r\n\r\n",
       ErrorCode::kUpstreamProtocolError},
      {"garbage", "SSH-2.0-OpenSSH_9.2\r\n", ErrorCode::kUpstreamProtocolError},
      {"two_content_lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
       ErrorCode::kUpstreamProtocolError},
      {"empty_field_name", "HTTP/1.1 200 OK\r\nX-A: a\r\n: b\r\nContent-Length: 0\r\n\r\n",
       ErrorCode::kUpstreamProtocolError},
      {"chunked_twice",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n",
       ErrorCode::kUpstreamProtocolError},
  };
}

class ResponseRejectionTest : public ::testing::TestWithParam<Rejection> {};

TEST_P(ResponseRejectionTest, Rejected) {
  const Rejection& c = GetParam();
  Recorder rec;
  Http1Parser parser(Kind::kResponse, rec);
  const auto r = parser.execute(c.bytes.data(), 0, c.bytes.size());
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(parser.error(), c.code) << parser.errorReason();
  for (const Message& m : rec.messages)
    EXPECT_FALSE(m.head_seen) << "a rejected head must not reach the handler";
}

INSTANTIATE_TEST_SUITE_P(Http1Parser, ResponseRejectionTest,
                         ::testing::ValuesIn(responseRejections()), rejectionName);

// ---- limits ------------------------------------------------------------------------------------

TEST_F(ParserLimitsTest, HeadOverTheLimitInOneCall) {
  request_parser_.setMaxHeadBytes(64);
  const std::string req =
      "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(100, 'x') + "\r\n\r\n";
  EXPECT_EQ(feed(request_parser_, req).status, Status::kError);
  EXPECT_EQ(request_parser_.error(), ErrorCode::kHeadersTooLarge);
  EXPECT_TRUE(recorder_.messages.empty() || !recorder_.messages[0].head_seen);
}

TEST_F(ParserLimitsTest, UnfinishedHeadOverTheLimit) {
  request_parser_.setMaxHeadBytes(64);
  std::string buf = "GET / HTTP/1.1\r\nHost: h\r\n";
  ASSERT_EQ(feed(request_parser_, buf).status, Status::kOk);
  const size_t had = buf.size();
  buf += "X-Big: " + std::string(100, 'x');
  const auto r = request_parser_.execute(buf.data(), had, buf.size() - had);
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(request_parser_.error(), ErrorCode::kHeadersTooLarge);
}

TEST_F(ParserLimitsTest, RequestLineOverTheLimitIsUriTooLong) {
  request_parser_.setMaxHeadBytes(64);
  const std::string req = "GET /" + std::string(100, 'p') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  EXPECT_EQ(feed(request_parser_, req).status, Status::kError);
  EXPECT_EQ(request_parser_.error(), ErrorCode::kUriTooLong);
}

TEST_F(ParserLimitsTest, UnfinishedRequestLineOverTheLimitIsUriTooLong) {
  // The line has not ended when the limit is passed: nothing else can be to blame.
  request_parser_.setMaxHeadBytes(64);
  std::string buf = "GET /" + std::string(40, 'p');
  ASSERT_EQ(feed(request_parser_, buf).status, Status::kOk);
  const size_t had = buf.size();
  buf += std::string(40, 'p');
  EXPECT_EQ(request_parser_.execute(buf.data(), had, buf.size() - had).status, Status::kError);
  EXPECT_EQ(request_parser_.error(), ErrorCode::kUriTooLong);
}

TEST_F(ParserLimitsTest, FieldCountLimitCountsHost) {
  request_parser_.setMaxFields(3);
  const std::string fits = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB:\r\n\r\n";
  ASSERT_EQ(feed(request_parser_, fits).status, Status::kOk) << request_parser_.errorReason();
  request_parser_.reset();
  const std::string over = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB:\r\nC:\r\n\r\n";
  EXPECT_EQ(feed(request_parser_, over).status, Status::kError);
  EXPECT_EQ(request_parser_.error(), ErrorCode::kHeadersTooLarge);
}

TEST_F(ParserLimitsTest, FieldCountLimitDoesNotWaitForTheEndOfTheHead) {
  request_parser_.setMaxFields(2);
  const std::string unfinished = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC";
  EXPECT_EQ(feed(request_parser_, unfinished).status, Status::kError);
  EXPECT_EQ(request_parser_.error(), ErrorCode::kHeadersTooLarge);
}

TEST_F(ParserLimitsTest, TrailersAreBoundedLikeTheHead) {
  // Trailers arrive after the head's checks; without a bound of their own they could grow
  // without end.
  request_parser_.setMaxHeadBytes(128);
  const std::string big =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\nX-T: " +
      std::string(200, 't') + "\r\n\r\n";
  EXPECT_EQ(feed(request_parser_, big).status, Status::kError);
  EXPECT_EQ(request_parser_.error(), ErrorCode::kHeadersTooLarge);
  EXPECT_FALSE(recorder_.messages.at(0).complete);

  Recorder rec;
  Http1Parser parser(Kind::kRequest, rec);
  parser.setMaxFields(4);
  std::string many = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 5; ++i)
    many += "X-T" + std::to_string(i) + ": t\r\n";
  many += "\r\n";
  EXPECT_EQ(parser.execute(many.data(), 0, many.size()).status, Status::kError);
  EXPECT_EQ(parser.error(), ErrorCode::kHeadersTooLarge);
}

TEST_F(ParserLimitsTest, ResponseTrailersAreBoundedToo) {
  response_parser_.setMaxHeadBytes(128);
  const std::string resp =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: " + std::string(200, 't') +
      "\r\n\r\n";
  EXPECT_EQ(feed(response_parser_, resp).status, Status::kError);
  EXPECT_EQ(response_parser_.error(), ErrorCode::kUpstreamProtocolError);
}

TEST_F(ParserLimitsTest, HeadLimitDoesNotCountTheBody) {
  request_parser_.setMaxHeadBytes(128);
  const std::string req =
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'b');
  ASSERT_EQ(feed(request_parser_, req).status, Status::kOk) << request_parser_.errorReason();
  EXPECT_EQ(recorder_.messages.at(0).body.size(), 1000u);
}

TEST_F(ParserLimitsTest, EmptyLinesBeforeAMessageDoNotCountTowardsItsHead) {
  // A connection drops empty lines that arrive on their own and keeps those that arrive with
  // the request: the limit must not depend on how the bytes were split (found by the
  // http1_request fuzz target), so the head is counted from its first byte.
  const std::string head =
      "GET / HTTP/1.1\r\nHost: h\r\nX-Fill: " + std::string(40, 'f') + "\r\n\r\n";
  const std::string req = "\r\n\r\n" + head;
  for (uint64_t limit : {head.size(), head.size() - 1}) {
    for (size_t cut = 0; cut < req.size(); ++cut) {
      Recorder rec;
      Http1Parser parser(Kind::kRequest, rec);
      parser.setMaxHeadBytes(limit);
      std::string buf = req.substr(0, cut);
      Http1Parser::Result r{Status::kOk, 0};
      if (cut > 0) r = parser.execute(buf.data(), 0, buf.size());
      size_t from = cut;
      if (r.status == Status::kOk && !parser.messageStarted()) {
        buf.clear();  // only empty lines so far: dropped, as the connection does
        from = 0;
      }
      buf.append(req, cut);
      if (r.status == Status::kOk) r = parser.execute(buf.data(), from, buf.size() - from);
      if (limit == head.size()) {
        ASSERT_EQ(r.status, Status::kOk) << "cut " << cut << ": " << parser.errorReason();
        EXPECT_EQ(parser.headBytes(), head.size()) << "cut " << cut;
        ASSERT_EQ(rec.messages.size(), 1u) << "cut " << cut;
        EXPECT_TRUE(rec.messages[0].complete) << "cut " << cut;
      } else {
        EXPECT_EQ(r.status, Status::kError) << "cut " << cut;
        EXPECT_EQ(parser.error(), ErrorCode::kHeadersTooLarge) << "cut " << cut;
      }
    }
  }
}

TEST_F(ParserLimitsTest, HeadSizeIsEveryByteOfTheHeadWhereverTheBytesWereSplit) {
  // Counted the same way as an unfinished head, so a limit between the two never depends on
  // the split (the http1_response fuzz target found the status line and the colon and spaces of
  // an empty last value left out of the count).
  struct Case {
    Kind kind;
    std::string head;
  };
  const std::vector<Case> cases = {
      {Kind::kResponse, "HTTP/1.1 204 No Content\r\n\r\n"},
      {Kind::kResponse, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nr: \r\n\r\n"},
      {Kind::kResponse, "HTTP/1.1 204 No Content\n\n"},  // llhttp takes these bare LFs
      {Kind::kResponse, "HTTP/1.1 204 No Content\r\nX-A: b\r\n\n"},
      {Kind::kRequest, "GET / HTTP/1.1\r\nHost: h\r\nX-Empty:   \r\n\r\n"},
      {Kind::kRequest, "GET /p HTTP/1.1\r\nHost: h\r\nX-A: b  \r\n\r\n"},
  };
  for (const Case& c : cases) {
    const std::string bytes = c.head + "0\r\n\r\n";  // a body (or the next message) follows
    for (uint64_t limit : {c.head.size(), c.head.size() - 1}) {
      for (size_t cut = 1; cut < bytes.size(); ++cut) {
        Recorder rec;
        Http1Parser parser(c.kind, rec);
        parser.setMaxHeadBytes(limit);
        std::string buf = bytes.substr(0, cut);
        auto r = parser.execute(buf.data(), 0, buf.size());
        if (r.status == Status::kOk && parser.inHeaders()) {
          buf.append(bytes, cut);  // the head so far stays in place
          r = parser.execute(buf.data(), cut, buf.size() - cut);
        }
        const bool head_seen = !rec.messages.empty() && rec.messages[0].head_seen;
        EXPECT_EQ(head_seen, limit == c.head.size())
            << c.head << " limit " << limit << " cut " << cut << ": " << parser.errorReason();
        if (head_seen) {
          EXPECT_EQ(parser.headBytes(), c.head.size()) << c.head << " cut " << cut;
        }
      }
    }
  }
}

TEST_F(ParserLimitsTest, InformationalResponsesDoNotCountTowardsTheFinalHead) {
  const std::string early =
      "HTTP/1.1 103 Early Hints\r\nLink: </" + std::string(40, 's') + ".css>; rel=preload\r\n\r\n";
  const std::string final_head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
  const std::string resp = early + early + final_head + "ok";
  response_parser_.setMaxHeadBytes(early.size());
  ASSERT_EQ(feed(response_parser_, resp).status, Status::kOk) << response_parser_.errorReason();
  ASSERT_EQ(recorder_.messages.size(), 3u);
  EXPECT_EQ(recorder_.messages[2].status, 200);
  EXPECT_EQ(recorder_.messages[2].body, "ok");
  EXPECT_TRUE(recorder_.messages[2].complete);

  Recorder rec;
  Http1Parser parser(Kind::kResponse, rec);
  parser.setMaxHeadBytes(early.size() - 1);
  EXPECT_EQ(parser.execute(resp.data(), 0, resp.size()).status, Status::kError);
  EXPECT_EQ(parser.error(), ErrorCode::kUpstreamProtocolError);
}

TEST_F(ParserLimitsTest, RequestLineAfterRejection) {
  struct Case {
    std::string bytes;
    std::string method;
    std::string target;
  };
  const std::vector<Case> cases = {
      {"GET /no-host HTTP/1.1\r\nAccept: */*\r\n\r\n", "GET", "/no-host"},
      {"DELETE /v2?x=1 HTTP/2.0\r\nHost: h\r\n\r\n", "DELETE", "/v2?x=1"},
      {"POST /e HTTP/1.1\r\nHost: h\r\nExpect: nope\r\n\r\n", "POST", "/e"},
      {"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", "", ""},
      {"G@T / HTTP/1.1\r\n\r\n", "", ""},
  };
  for (const Case& c : cases) {
    Recorder rec;
    Http1Parser parser(Kind::kRequest, rec);
    ASSERT_EQ(parser.execute(c.bytes.data(), 0, c.bytes.size()).status, Status::kError) << c.bytes;
    std::string method;
    std::string target;
    parser.requestLine(c.bytes.data(), &method, &target);
    EXPECT_EQ(method, c.method) << c.bytes;
    EXPECT_EQ(target, c.target) << c.bytes;
  }
}

TEST_F(ParserLimitsTest, RequestLineOfAnUnfinishedHeadOverTheLimit) {
  request_parser_.setMaxHeadBytes(40);
  const std::string req =
      "PUT /long/target HTTP/1.1\r\nHost: h\r\nX-Filler: " + std::string(60, 'f');
  ASSERT_EQ(feed(request_parser_, req).status, Status::kError);
  EXPECT_EQ(request_parser_.error(), ErrorCode::kHeadersTooLarge);
  std::string method;
  std::string target;
  request_parser_.requestLine(req.data(), &method, &target);
  EXPECT_EQ(method, "PUT");
  EXPECT_EQ(target, "/long/target");
}

}  // namespace
}  // namespace viscount
