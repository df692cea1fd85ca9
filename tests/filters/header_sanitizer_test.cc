#include "filters/header_sanitizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/filters/test_headers.h"

namespace viscount {
namespace {

using test::liveNames;
using test::TestRequest;
using test::TestResponse;
using test::valuesOf;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const std::vector<std::string> kHopByHop = {
    "connection",        "keep-alive", "proxy-connection", "te",
    "transfer-encoding", "upgrade",    "http2-settings"};

std::string upperCased(std::string s) {
  for (char& c : s)
    c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
  return s;
}

TEST(HeaderSanitizerTest, HopByHopTable) {
  for (const auto& name : kHopByHop) {
    EXPECT_TRUE(isHopByHopHeader(name)) << name;
    EXPECT_TRUE(isHopByHopHeader(upperCased(name))) << name;
  }
  for (std::string name : {"host", "content-length", "x-request-id", "trailer", "tee", "t", ""}) {
    EXPECT_FALSE(isHopByHopHeader(name)) << name;
  }
}

TEST(HeaderSanitizerTest, RemovesEachHopByHopHeaderFromRequests) {
  for (const auto& name : kHopByHop) {
    for (const auto& spelled : {name, upperCased(name)}) {
      TestRequest r({{"accept", "*/*"}, {spelled, "x"}, {"x-app", "1"}});
      sanitizeRequestHeaders(r.head);
      EXPECT_THAT(liveNames(r.head.headers), ElementsAre("accept", "x-app")) << spelled;
    }
  }
}

TEST(HeaderSanitizerTest, TeTrailersIsRemovedButRemembered) {
  struct Case {
    std::vector<std::pair<std::string, std::string>> fields;
    bool trailers;
  };
  const std::vector<Case> cases = {
      {{{"te", "trailers"}}, true},
      {{{"TE", "Trailers"}}, true},
      {{{"te", "gzip;q=0.5, trailers"}}, true},
      {{{"te", "gzip"}, {"te", "trailers"}}, true},
      {{{"te", "gzip"}}, false},
      {{{"te", "trailersx"}}, false},
      {{{"te", ""}}, false},
      {{{"x-te", "trailers"}}, false},
      {{}, false},
  };
  for (const Case& c : cases) {
    TestRequest r({{"accept", "*/*"}});
    for (const auto& [name, value] : c.fields)
      r.add(name, value);
    r.head.te_trailers = !c.trailers;  // whatever was there before is replaced
    sanitizeRequestHeaders(r.head);
    EXPECT_EQ(r.head.te_trailers, c.trailers) << testing::PrintToString(c.fields);
    for (const std::string& name : liveNames(r.head.headers))
      EXPECT_NE(name, "te") << "TE itself goes: the codec writes it again for HTTP/2 upstreams";
  }
}

TEST(HeaderSanitizerTest, RemovesEachHopByHopHeaderFromResponses) {
  for (const auto& name : kHopByHop) {
    TestResponse r({{"content-type", "text/plain"}, {name, "x"}, {name, "y"}});
    sanitizeResponseHeaders(r.head);
    EXPECT_THAT(liveNames(r.head.headers), ElementsAre("content-type")) << name;
  }
}

TEST(HeaderSanitizerTest, RemovesHeadersNamedInConnection) {
  TestRequest r({{"Connection", "keep-alive, X-Secret"},
                 {"x-secret", "1"},
                 {"X-SECRET", "2"},
                 {"x-secretive", "kept"},
                 {"accept", "*/*"}});
  sanitizeRequestHeaders(r.head);
  EXPECT_THAT(liveNames(r.head.headers), ElementsAre("x-secretive", "accept"));
}

TEST(HeaderSanitizerTest, ConnectionTokensWithOddSpacingAndCase) {
  TestRequest r({{"connection", " \tFoo ,bar\t,,  ,BAZ-Qux , "},
                 {"foo", "1"},
                 {"Bar", "2"},
                 {"baz-qux", "3"},
                 {"keep", "4"}});
  sanitizeRequestHeaders(r.head);
  EXPECT_THAT(liveNames(r.head.headers), ElementsAre("keep"));
}

TEST(HeaderSanitizerTest, EveryConnectionHeaderCounts) {
  TestRequest r({{"connection", "a"},
                 {"a", "1"},
                 {"CONNECTION", "b, close"},
                 {"b", "2"},
                 {"connection", ""},
                 {"c", "3"}});
  sanitizeRequestHeaders(r.head);
  EXPECT_THAT(liveNames(r.head.headers), ElementsAre("c"));
}

TEST(HeaderSanitizerTest, ConnectionCannotRemoveHost) {
  TestRequest r({{"connection", "Host, other"}, {"host", "app.local"}, {"other", "1"}});
  sanitizeRequestHeaders(r.head);
  EXPECT_THAT(liveNames(r.head.headers), ElementsAre("host"));
}

TEST(HeaderSanitizerTest, ResponseConnectionTokensAreRemovedToo) {
  TestResponse r({{"connection", "x-upstream-private"},
                  {"x-upstream-private", "1"},
                  {"content-type", "text/plain"}});
  sanitizeResponseHeaders(r.head);
  EXPECT_THAT(liveNames(r.head.headers), ElementsAre("content-type"));
}

TEST(HeaderSanitizerTest, AlreadyRemovedConnectionHeaderIsIgnored) {
  TestRequest r({{"connection", "x-keep"}, {"x-keep", "1"}});
  r.head.headers.fields()[0].removed = true;
  sanitizeRequestHeaders(r.head);
  EXPECT_THAT(liveNames(r.head.headers), ElementsAre("x-keep"));
}

TEST(HeaderSanitizerTest, UnderscoreLookalikesOfHopByHopHeadersAreRemoved) {
  TestRequest r({{"Transfer_Encoding", "chunked"}, {"keep_alive", "1"}, {"x_app", "1"}});
  sanitizeRequestHeaders(r.head);
  EXPECT_THAT(liveNames(r.head.headers), ElementsAre("x_app"));
}

TEST(ForwardedHeadersTest, UnderscoreLookalikesAreNeverBelieved) {
  for (bool trusted : {true, false}) {
    TestRequest r({{"X_Forwarded_For", "1.1.1.1"}, {"x_forwarded_proto", "https"}});
    setForwardedHeaders(r.head, "10.0.0.7", trusted);
    EXPECT_THAT(liveNames(r.head.headers), ElementsAre("x-forwarded-for", "x-forwarded-proto"));
    EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-for"), ElementsAre("10.0.0.7"));
    EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-proto"), ElementsAre("http"));
  }
}

TEST(ForwardedHeadersTest, UntrustedPeerGetsOnlyItsOwnAddress) {
  TestRequest r({{"x-forwarded-for", "1.1.1.1"},
                 {"X-Forwarded-For", "2.2.2.2, 3.3.3.3"},
                 {"x-forwarded-proto", "https"}});
  setForwardedHeaders(r.head, "10.0.0.7", false);
  EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-for"), ElementsAre("10.0.0.7"));
  EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-proto"), ElementsAre("http"));
}

TEST(ForwardedHeadersTest, TrustedPeerChainIsJoinedAndExtended) {
  TestRequest r({{"x-forwarded-for", "1.1.1.1"},
                 {"accept", "*/*"},
                 {"X-Forwarded-For", " 2.2.2.2, 3.3.3.3 "},
                 {"x-forwarded-for", ""}});
  setForwardedHeaders(r.head, "127.0.0.1", true);
  EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-for"),
              ElementsAre("1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"));
}

TEST(ForwardedHeadersTest, TrustedPeerWithoutChainStartsOne) {
  TestRequest r;
  setForwardedHeaders(r.head, "::1", true);
  EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-for"), ElementsAre("::1"));
}

TEST(ForwardedHeadersTest, ClientAddressIsCopied) {
  TestRequest r;
  {
    std::string ip = "192.168.1.20";
    setForwardedHeaders(r.head, ip, false);
    ip.assign("overwritten!");
  }
  EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-for"), ElementsAre("192.168.1.20"));
}

TEST(ForwardedHeadersTest, TrustedPeerProtoIsKeptWhenValid) {
  TestRequest r({{"x-forwarded-proto", "https"}}, "http");
  setForwardedHeaders(r.head, "127.0.0.1", true);
  EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-proto"), ElementsAre("https"));

  TestRequest upper({{"X-Forwarded-Proto", "HTTPS"}}, "http");
  setForwardedHeaders(upper.head, "127.0.0.1", true);
  EXPECT_THAT(valuesOf(upper.head.headers, "x-forwarded-proto"), ElementsAre("https"));
}

TEST(ForwardedHeadersTest, TrustedPeerProtoIsReplacedWhenOdd) {
  for (auto pairs : std::vector<std::vector<std::string>>{
           {"ftp"}, {"https, http"}, {"https", "https"}, {""}, {"https\r\n"}}) {
    TestRequest r({}, "http");
    for (const auto& v : pairs)
      r.add("x-forwarded-proto", v);
    setForwardedHeaders(r.head, "127.0.0.1", true);
    EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-proto"), ElementsAre("http"))
        << pairs.size() << " " << pairs[0];
  }
}

TEST(ForwardedHeadersTest, ProtoFollowsTheSchemeWeSaw) {
  TestRequest tls({}, "https");
  setForwardedHeaders(tls.head, "10.1.1.1", false);
  EXPECT_THAT(valuesOf(tls.head.headers, "x-forwarded-proto"), ElementsAre("https"));

  TestRequest clear({{"x-forwarded-proto", "https"}}, "http");
  setForwardedHeaders(clear.head, "10.1.1.1", false);
  EXPECT_THAT(valuesOf(clear.head.headers, "x-forwarded-proto"), ElementsAre("http"));
}

TEST(ForwardedHeadersTest, ExactlyOneOfEachAfterSanitizing) {
  TestRequest r({{"connection", "x-forwarded-for"},
                 {"x-forwarded-for", "6.6.6.6"},
                 {"x-forwarded-proto", "http"},
                 {"x-forwarded-proto", "https"}});
  sanitizeRequestHeaders(r.head);
  setForwardedHeaders(r.head, "127.0.0.1", true);
  EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-for"), ElementsAre("127.0.0.1"));
  EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-proto"), ElementsAre("http"));
  EXPECT_THAT(valuesOf(r.head.headers, "connection"), IsEmpty());
}

}  // namespace
}  // namespace viscount
