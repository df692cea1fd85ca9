#include "filters/context_filter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "filters/header_sanitizer.h"
#include "filters/trace_context.h"
#include "tests/filters/test_headers.h"

namespace viscount {
namespace {

using test::isLowerHex;
using test::isUuid;
using test::TestRequest;
using test::TestResponse;
using test::valuesOf;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr bool kTrusted = true;
constexpr bool kUntrusted = false;
constexpr const char* kTrace = "0af7651916cd43dd8448eb211c80319c";
constexpr const char* kParent = "b7ad6b7169203331";
const std::string kTraceparent = std::string("00-") + kTrace + "-" + kParent + "-01";

class ContextFilterTest : public ::testing::Test {
 protected:
  void configure(const ContextConfig& config) {
    std::string error;
    filter_ = ContextFilter::create(config, &error);
    ASSERT_TRUE(filter_) << error;
  }
  void SetUp() override { configure(ContextConfig{}); }

  RequestContext run(TestRequest& r, bool trusted) {
    RequestContext ctx;
    filter_->onRequestHeaders(r.head, ctx, trusted, ids_);
    return ctx;
  }
  std::vector<std::string> sent(const TestRequest& r, std::string_view name) {
    return valuesOf(r.head.headers, name);
  }

  std::unique_ptr<ContextFilter> filter_;
  IdGenerator ids_;
};

// --- configuration ---

TEST(ContextFilterCreateTest, RejectsBadConfig) {
  struct Case {
    void (*edit)(ContextConfig&);
    const char* key;
  };
  const Case cases[] = {
      {[](ContextConfig& c) { c.id_pattern = "^[a-z"; }, "context.id_pattern"},
      {[](ContextConfig& c) { c.user_id.pattern = "("; }, "context.user_id.pattern"},
      {[](ContextConfig& c) { c.request_id.header = ""; }, "context.request_id.header"},
      {[](ContextConfig& c) { c.request_id.header = "x request id"; }, "context.request_id.header"},
      {[](ContextConfig& c) { c.correlation_id.header = "x-id\r\n"; },
       "context.correlation_id.header"},
      {[](ContextConfig& c) { c.user_id.header = "Connection"; }, "context.user_id.header"},
      {[](ContextConfig& c) { c.user_id.header = "traceparent"; }, "context.user_id.header"},
      {[](ContextConfig& c) { c.request_id.header = "host"; }, "context.request_id.header"},
      {[](ContextConfig& c) { c.correlation_id.header = "X-Request-Id"; }, "x-request-id"},
  };
  for (const auto& c : cases) {
    ContextConfig config;
    c.edit(config);
    std::string error;
    EXPECT_EQ(ContextFilter::create(config, &error), nullptr) << c.key;
    EXPECT_NE(error.find(c.key), std::string::npos) << error;
  }
}

TEST(ContextFilterCreateTest, KeepsTheConfig) {
  ContextConfig config;
  config.request_id.header = "X-Req";
  std::string error;
  auto filter = ContextFilter::create(config, &error);
  ASSERT_TRUE(filter) << error;
  EXPECT_EQ(filter->config().request_id.header, "X-Req");
}

// --- request id and correlation id ---

TEST_F(ContextFilterTest, GeneratesIdsWhenAbsent) {
  TestRequest r({{"accept", "*/*"}});
  RequestContext ctx = run(r, kTrusted);
  EXPECT_TRUE(isUuid(ctx.request_id, '4')) << ctx.request_id;
  EXPECT_TRUE(isUuid(ctx.correlation_id, '4')) << ctx.correlation_id;
  EXPECT_NE(ctx.request_id, ctx.correlation_id);
  EXPECT_THAT(sent(r, "x-request-id"), ElementsAre(ctx.request_id));
  EXPECT_THAT(sent(r, "x-correlation-id"), ElementsAre(ctx.correlation_id));
  EXPECT_FALSE(ctx.user_id);
  EXPECT_THAT(sent(r, "x-user-id"), IsEmpty());
  EXPECT_THAT(sent(r, "accept"), ElementsAre("*/*"));
}

TEST_F(ContextFilterTest, SentValuesViewTheContext) {
  TestRequest r;
  RequestContext ctx;
  filter_->onRequestHeaders(r.head, ctx, kTrusted, ids_);
  EXPECT_EQ(r.head.headers.find("x-request-id")->value.data(), ctx.request_id.data());
  EXPECT_EQ(r.head.headers.find("x-correlation-id")->value.data(), ctx.correlation_id.data());
  EXPECT_EQ(r.head.headers.find("traceparent")->value.data(), ctx.traceparent.data());
}

TEST_F(ContextFilterTest, GeneratesUuid7WhenConfigured) {
  ContextConfig config;
  config.request_id.generate = IdFormat::kUuid7;
  configure(config);
  TestRequest r;
  RequestContext ctx = run(r, kUntrusted);
  EXPECT_TRUE(isUuid(ctx.request_id, '7')) << ctx.request_id;
  EXPECT_TRUE(isUuid(ctx.correlation_id, '7')) << ctx.correlation_id;
}

TEST_F(ContextFilterTest, PreservesWellFormedIdsFromTrustedPeers) {
  TestRequest r({{"X-Request-ID", "req-123"}, {"x-correlation-id", "corr:456"}});
  RequestContext ctx = run(r, kTrusted);
  EXPECT_EQ(ctx.request_id, "req-123");
  EXPECT_EQ(ctx.correlation_id, "corr:456");
  EXPECT_THAT(sent(r, "x-request-id"), ElementsAre("req-123"));
  EXPECT_THAT(sent(r, "x-correlation-id"), ElementsAre("corr:456"));
}

TEST_F(ContextFilterTest, ReplacesIdsFromUntrustedPeers) {
  TestRequest r({{"x-request-id", "req-123"}, {"x-correlation-id", "corr-456"}});
  RequestContext ctx = run(r, kUntrusted);
  EXPECT_TRUE(isUuid(ctx.request_id, '4'));
  EXPECT_TRUE(isUuid(ctx.correlation_id, '4'));
  EXPECT_THAT(sent(r, "x-request-id"), ElementsAre(ctx.request_id));
  EXPECT_THAT(sent(r, "x-correlation-id"), ElementsAre(ctx.correlation_id));
}

TEST_F(ContextFilterTest, PreserveIncomingOffReplacesOnlyTheRequestId) {
  ContextConfig config;
  config.request_id.preserve_incoming = false;
  configure(config);
  TestRequest r({{"x-request-id", "req-123"}, {"x-correlation-id", "corr-456"}});
  RequestContext ctx = run(r, kTrusted);
  EXPECT_TRUE(isUuid(ctx.request_id, '4'));
  EXPECT_EQ(ctx.correlation_id, "corr-456");
}

TEST_F(ContextFilterTest, ReplacesMalformedIdsEvenFromTrustedPeers) {
  const std::vector<std::string> malformed = {
      "",
      "has space",
      " leading",
      "crlf\r\nx-injected: 1",
      "lf\n",
      std::string("nul\0byte", 8),
      std::string(10 * 1024, 'a'),
      std::string(129, 'a'),
      "caf\xc3\xa9",
      "\xff\xfe",
      "semi;colon",
      "quote\"",
      "tab\t",
  };
  for (const auto& bad : malformed) {
    TestRequest r({{"x-request-id", bad}, {"x-correlation-id", bad}});
    RequestContext ctx = run(r, kTrusted);
    EXPECT_TRUE(isUuid(ctx.request_id, '4')) << bad.size();
    EXPECT_TRUE(isUuid(ctx.correlation_id, '4')) << bad.size();
    EXPECT_THAT(sent(r, "x-request-id"), ElementsAre(ctx.request_id));
    EXPECT_THAT(sent(r, "x-correlation-id"), ElementsAre(ctx.correlation_id));
  }
}

TEST_F(ContextFilterTest, IdenticalDuplicatesCollapseToOne) {
  TestRequest r({{"x-request-id", "same"},
                 {"X-Request-Id", "same"},
                 {"x-correlation-id", "c1"},
                 {"x-correlation-id", "c1"},
                 {"x-correlation-id", "c1"}});
  RequestContext ctx = run(r, kTrusted);
  EXPECT_EQ(ctx.request_id, "same");
  EXPECT_EQ(ctx.correlation_id, "c1");
  EXPECT_THAT(sent(r, "x-request-id"), ElementsAre("same"));
  EXPECT_THAT(sent(r, "x-correlation-id"), ElementsAre("c1"));
}

TEST_F(ContextFilterTest, DifferingDuplicatesAreReplaced) {
  TestRequest r({{"x-request-id", "one"},
                 {"x-request-id", "two"},
                 {"x-correlation-id", "c1"},
                 {"x-correlation-id", "c1 "}});
  RequestContext ctx = run(r, kTrusted);
  EXPECT_TRUE(isUuid(ctx.request_id, '4'));
  EXPECT_TRUE(isUuid(ctx.correlation_id, '4'));
  EXPECT_THAT(sent(r, "x-request-id"), ElementsAre(ctx.request_id));
  EXPECT_THAT(sent(r, "x-correlation-id"), ElementsAre(ctx.correlation_id));
}

TEST_F(ContextFilterTest, ConfiguredNamesMatchCaseInsensitivelyAndAreSentLowercase) {
  ContextConfig config;
  config.request_id.header = "X-Trace-Request";
  config.correlation_id.header = "X-Flow";
  configure(config);
  TestRequest r({{"x-TRACE-request", "abc"}, {"x-flow", "def"}, {"x-request-id", "other"}});
  RequestContext ctx = run(r, kTrusted);
  EXPECT_EQ(ctx.request_id, "abc");
  EXPECT_EQ(ctx.correlation_id, "def");
  EXPECT_THAT(sent(r, "x-trace-request"), ElementsAre("abc"));
  EXPECT_EQ(r.head.headers.find("x-trace-request")->name, "x-trace-request");
  EXPECT_EQ(r.head.headers.find("x-flow")->name, "x-flow");
  // Not a context header under this config: passes through untouched.
  EXPECT_THAT(sent(r, "x-request-id"), ElementsAre("other"));
}

TEST_F(ContextFilterTest, CustomIdPatternApplies) {
  ContextConfig config;
  config.id_pattern = "^[0-9]{3}$";
  configure(config);
  TestRequest ok({{"x-request-id", "123"}});
  EXPECT_EQ(run(ok, kTrusted).request_id, "123");
  TestRequest bad({{"x-request-id", "1234"}});
  EXPECT_TRUE(isUuid(run(bad, kTrusted).request_id, '4'));
}

// --- user id ---

TEST_F(ContextFilterTest, UserIdKeptFromTrustedPeers) {
  TestRequest r({{"x-user-id", "alice@example.com"}});
  RequestContext ctx = run(r, kTrusted);
  ASSERT_TRUE(ctx.user_id);
  EXPECT_EQ(*ctx.user_id, "alice@example.com");
  EXPECT_THAT(sent(r, "x-user-id"), ElementsAre("alice@example.com"));
}

TEST_F(ContextFilterTest, UserIdStrippedFromUntrustedPeers) {
  TestRequest r({{"x-user-id", "admin"}, {"X-User-Id", "admin"}});
  RequestContext ctx = run(r, kUntrusted);
  EXPECT_FALSE(ctx.user_id);
  EXPECT_THAT(sent(r, "x-user-id"), IsEmpty());
}

TEST_F(ContextFilterTest, UnderscoreLookalikesOfOurHeadersAreRemoved) {
  // A CGI-style server reads X_User_Id as X-User-Id: from any peer, such a copy would be a
  // second, unchecked value of a header the proxy decides.
  for (bool trusted : {kTrusted, kUntrusted}) {
    TestRequest r({{"X_User_Id", "admin"},
                   {"x_request_id", "evil"},
                   {"X-Correlation_Id", "evil"},
                   {"x-user-id", "alice"},
                   {"x_unrelated", "kept"}});
    RequestContext ctx = run(r, trusted);
    EXPECT_THAT(sent(r, "x_user_id"), IsEmpty());
    EXPECT_THAT(sent(r, "x_request_id"), IsEmpty());
    EXPECT_THAT(sent(r, "x-correlation_id"), IsEmpty());
    EXPECT_THAT(sent(r, "x_unrelated"), ElementsAre("kept"));
    EXPECT_NE(ctx.request_id, "evil");
    EXPECT_NE(ctx.correlation_id, "evil");
    EXPECT_EQ(ctx.user_id, trusted ? std::optional<std::string>("alice") : std::nullopt);
  }
}

TEST_F(ContextFilterTest, CertificateUserIsTheOnlySourceWhenGiven) {
  for (bool trusted : {kTrusted, kUntrusted}) {
    // The certificate's name wins over any header, from any peer.
    TestRequest r({{"x-user-id", "admin"}});
    RequestContext ctx;
    filter_->onRequestHeaders(r.head, ctx, trusted, ids_, std::string_view("alice"));
    EXPECT_EQ(ctx.user_id, std::optional<std::string>("alice"));
    EXPECT_THAT(sent(r, "x-user-id"), ElementsAre("alice"));

    // No certificate name: no user, even from a trusted peer's header.
    TestRequest none({{"x-user-id", "admin"}});
    RequestContext ctx2;
    filter_->onRequestHeaders(none.head, ctx2, trusted, ids_, std::string_view());
    EXPECT_FALSE(ctx2.user_id);
    EXPECT_THAT(sent(none, "x-user-id"), IsEmpty());

    // A name the user id pattern refuses is no user either.
    TestRequest odd;
    RequestContext ctx3;
    filter_->onRequestHeaders(odd.head, ctx3, trusted, ids_, std::string_view("two words"));
    EXPECT_FALSE(ctx3.user_id);
  }
}

TEST_F(ContextFilterTest, UserIdStrippedWhenAmbiguousOrMalformed) {
  for (auto values : std::vector<std::vector<std::string>>{
           {"alice", "bob"}, {"has space"}, {""}, {"a\r\nb"}, {std::string(257, 'u')}}) {
    TestRequest r;
    for (const auto& v : values)
      r.add("x-user-id", v);
    RequestContext ctx = run(r, kTrusted);
    EXPECT_FALSE(ctx.user_id) << values[0];
    EXPECT_THAT(sent(r, "x-user-id"), IsEmpty());
  }
}

TEST_F(ContextFilterTest, UserIdIdenticalCopiesCollapse) {
  TestRequest r({{"x-user-id", "alice"}, {"x-user-id", "alice"}});
  RequestContext ctx = run(r, kTrusted);
  EXPECT_EQ(ctx.user_id, "alice");
  EXPECT_THAT(sent(r, "x-user-id"), ElementsAre("alice"));
}

// --- trace context ---

TEST_F(ContextFilterTest, StartsATraceWhenNoneIsGiven) {
  TestRequest r({{"tracestate", "vendor=1"}});
  RequestContext ctx = run(r, kTrusted);
  ASSERT_THAT(ctx.trace_id, SizeIs(32));
  ASSERT_THAT(ctx.span_id, SizeIs(16));
  EXPECT_TRUE(isLowerHex(ctx.trace_id));
  EXPECT_TRUE(isLowerHex(ctx.span_id));
  EXPECT_EQ(ctx.traceparent, "00-" + ctx.trace_id + "-" + ctx.span_id + "-01");
  EXPECT_THAT(sent(r, "traceparent"), ElementsAre(ctx.traceparent));
  EXPECT_THAT(sent(r, "tracestate"), IsEmpty());
}

TEST_F(ContextFilterTest, ContinuesAValidTraceFromAnyPeer) {
  for (bool trusted : {kTrusted, kUntrusted}) {
    TestRequest r({{"traceparent", std::string("00-") + kTrace + "-" + kParent + "-00"},
                   {"tracestate", "congo=t61rcWkgMzE"}});
    RequestContext ctx = run(r, trusted);
    EXPECT_EQ(ctx.trace_id, kTrace);
    EXPECT_THAT(ctx.span_id, SizeIs(16));
    EXPECT_NE(ctx.span_id, kParent);
    EXPECT_EQ(ctx.traceparent, std::string("00-") + kTrace + "-" + ctx.span_id + "-00");
    EXPECT_THAT(sent(r, "traceparent"), ElementsAre(ctx.traceparent));
    EXPECT_THAT(sent(r, "tracestate"), ElementsAre("congo=t61rcWkgMzE"));
  }
}

TEST_F(ContextFilterTest, ContinuesALaterVersionAsVersion00) {
  TestRequest r({{"traceparent", std::string("cc-") + kTrace + "-" + kParent + "-01-future"}});
  RequestContext ctx = run(r, kUntrusted);
  EXPECT_EQ(ctx.trace_id, kTrace);
  EXPECT_EQ(ctx.traceparent.substr(0, 3), "00-");
  EXPECT_EQ(ctx.traceparent.size(), kTraceparentSize);
}

TEST_F(ContextFilterTest, InvalidTraceparentStartsANewTraceAndDropsTracestate) {
  for (std::string bad :
       {std::string("00-") + std::string(32, '0') + "-" + kParent + "-01",
        std::string("00-") + kTrace + "-" + kParent + "-01-extra", std::string("garbage"),
        std::string("00-0AF7651916CD43DD8448EB211C80319C-") + kParent + "-01"}) {
    TestRequest r({{"traceparent", bad}, {"tracestate", "a=1"}});
    RequestContext ctx = run(r, kTrusted);
    EXPECT_NE(ctx.trace_id, kTrace);
    EXPECT_TRUE(parseTraceparent(ctx.traceparent)) << ctx.traceparent;
    EXPECT_THAT(sent(r, "traceparent"), ElementsAre(ctx.traceparent));
    EXPECT_THAT(sent(r, "tracestate"), IsEmpty());
  }
}

TEST_F(ContextFilterTest, InvalidOrOverlongTracestateIsNeverSentAsItCame) {
  TestRequest bad({{"traceparent", kTraceparent}, {"tracestate", "a=1,Not Valid"}});
  RequestContext ctx = run(bad, kUntrusted);
  EXPECT_EQ(ctx.trace_id, kTrace);  // the trace continues without it
  EXPECT_THAT(sent(bad, "tracestate"), IsEmpty());

  TestRequest big(
      {{"traceparent", kTraceparent}, {"tracestate", "a=1," + std::string(10000, ' ') + "b=2"}});
  run(big, kUntrusted);
  EXPECT_THAT(sent(big, "tracestate"), ElementsAre("a=1,b=2"));
}

TEST_F(ContextFilterTest, IdenticalTraceparentCopiesAreContinued) {
  TestRequest r({{"traceparent", kTraceparent}, {"Traceparent", kTraceparent}});
  RequestContext ctx = run(r, kUntrusted);
  EXPECT_EQ(ctx.trace_id, kTrace);
  EXPECT_THAT(sent(r, "traceparent"), ElementsAre(ctx.traceparent));
}

TEST_F(ContextFilterTest, DifferingTraceparentCopiesStartANewTrace) {
  TestRequest r({{"traceparent", kTraceparent},
                 {"traceparent", std::string("00-") + kTrace + "-00f067aa0ba902b7-01"},
                 {"tracestate", "a=1"}});
  RequestContext ctx = run(r, kTrusted);
  EXPECT_NE(ctx.trace_id, kTrace);
  EXPECT_THAT(sent(r, "traceparent"), ElementsAre(ctx.traceparent));
  EXPECT_THAT(sent(r, "tracestate"), IsEmpty());
}

TEST_F(ContextFilterTest, SplitTracestateIsJoined) {
  TestRequest r({{"traceparent", kTraceparent},
                 {"tracestate", "a=1,b=2"},
                 {"accept", "*/*"},
                 {"TraceState", " c=3 "},
                 {"tracestate", ""}});
  RequestContext ctx = run(r, kTrusted);
  EXPECT_THAT(sent(r, "tracestate"), ElementsAre("a=1,b=2,c=3"));
}

TEST_F(ContextFilterTest, TraceContextOffLeavesTraceHeadersAlone) {
  ContextConfig config;
  config.trace_context = false;
  configure(config);
  TestRequest r({{"traceparent", "not-even-valid"}, {"tracestate", "a=1"}, {"tracestate", "b=2"}});
  RequestContext ctx;
  ctx.trace_id = "stale";
  ctx.span_id = "stale";
  ctx.traceparent = "stale";
  filter_->onRequestHeaders(r.head, ctx, kTrusted, ids_);
  EXPECT_THAT(ctx.trace_id, IsEmpty());
  EXPECT_THAT(ctx.span_id, IsEmpty());
  EXPECT_THAT(ctx.traceparent, IsEmpty());
  EXPECT_THAT(sent(r, "traceparent"), ElementsAre("not-even-valid"));
  EXPECT_THAT(sent(r, "tracestate"), ElementsAre("a=1", "b=2"));
}

// --- interplay with the sanitizer ---

TEST_F(ContextFilterTest, ConnectionCannotRemoveOurHeaders) {
  TestRequest r({{"Connection", "keep-alive, X-Request-Id ,traceparent, x-private"},
                 {"connection", "x-correlation-id"},
                 {"x-private", "1"},
                 {"traceparent", kTraceparent},
                 {"accept", "*/*"}});
  RequestContext ctx = run(r, kTrusted);
  sanitizeRequestHeaders(r.head);
  EXPECT_THAT(sent(r, "x-request-id"), ElementsAre(ctx.request_id));
  EXPECT_THAT(sent(r, "x-correlation-id"), ElementsAre(ctx.correlation_id));
  EXPECT_THAT(sent(r, "traceparent"), ElementsAre(ctx.traceparent));
  EXPECT_EQ(ctx.trace_id, kTrace);
  EXPECT_THAT(sent(r, "x-private"), IsEmpty());
  EXPECT_THAT(sent(r, "connection"), IsEmpty());
  EXPECT_THAT(sent(r, "accept"), ElementsAre("*/*"));
}

TEST_F(ContextFilterTest, FullRequestPhaseSendsExactlyOneOfEach) {
  TestRequest r({{"x-request-id", "a"},
                 {"x-request-id", "b"},
                 {"x-correlation-id", "c"},
                 {"x-user-id", "u"},
                 {"x-user-id", "u"},
                 {"traceparent", kTraceparent},
                 {"tracestate", "t=1"},
                 {"x-forwarded-for", "9.9.9.9"},
                 {"transfer-encoding", "chunked"},
                 {"connection", "close"}});
  RequestContext ctx = run(r, kTrusted);
  sanitizeRequestHeaders(r.head);
  setForwardedHeaders(r.head, "127.0.0.1", kTrusted);
  for (const char* name : {"x-request-id", "x-correlation-id", "x-user-id", "traceparent",
                           "tracestate", "x-forwarded-for", "x-forwarded-proto"}) {
    EXPECT_THAT(sent(r, name), SizeIs(1)) << name;
  }
  EXPECT_THAT(sent(r, "transfer-encoding"), IsEmpty());
  EXPECT_THAT(sent(r, "connection"), IsEmpty());
}

// --- no state between requests ---

TEST_F(ContextFilterTest, TwoRequestsNeverShareIds) {
  TestRequest a;
  TestRequest b;
  RequestContext ctx_a = run(a, kTrusted);
  RequestContext ctx_b = run(b, kTrusted);
  EXPECT_NE(ctx_a.request_id, ctx_b.request_id);
  EXPECT_NE(ctx_a.correlation_id, ctx_b.correlation_id);
  EXPECT_NE(ctx_a.trace_id, ctx_b.trace_id);
  EXPECT_NE(ctx_a.span_id, ctx_b.span_id);
}

TEST_F(ContextFilterTest, AReusedContextCarriesNothingOver) {
  RequestContext ctx;
  TestRequest first({{"x-request-id", "r1"},
                     {"x-correlation-id", "c1"},
                     {"x-user-id", "alice"},
                     {"traceparent", kTraceparent}});
  filter_->onRequestHeaders(first.head, ctx, kTrusted, ids_);
  ASSERT_EQ(ctx.request_id, "r1");
  ASSERT_EQ(ctx.user_id, "alice");

  TestRequest second;
  filter_->onRequestHeaders(second.head, ctx, kUntrusted, ids_);
  EXPECT_TRUE(isUuid(ctx.request_id, '4'));
  EXPECT_TRUE(isUuid(ctx.correlation_id, '4'));
  EXPECT_FALSE(ctx.user_id);
  EXPECT_NE(ctx.trace_id, kTrace);
  EXPECT_THAT(valuesOf(second.head.headers, "x-user-id"), IsEmpty());
}

// --- ensureIds ---

TEST_F(ContextFilterTest, EnsureIdsFillsOnlyWhatIsMissing) {
  RequestContext empty;
  filter_->ensureIds(empty, ids_);
  EXPECT_TRUE(isUuid(empty.request_id, '4'));
  EXPECT_TRUE(isUuid(empty.correlation_id, '4'));
  EXPECT_NE(empty.request_id, empty.correlation_id);
  EXPECT_TRUE(parseTraceparent(empty.traceparent));
  EXPECT_EQ(empty.traceparent, "00-" + empty.trace_id + "-" + empty.span_id + "-01");

  RequestContext decided;
  TestRequest r({{"x-request-id", "keep-me"}});
  filter_->onRequestHeaders(r.head, decided, kTrusted, ids_);
  RequestContext before = decided;
  filter_->ensureIds(decided, ids_);
  EXPECT_EQ(decided.request_id, before.request_id);
  EXPECT_EQ(decided.correlation_id, before.correlation_id);
  EXPECT_EQ(decided.traceparent, before.traceparent);
}

TEST_F(ContextFilterTest, EnsureIdsWithoutTraceContext) {
  ContextConfig config;
  config.trace_context = false;
  configure(config);
  RequestContext ctx;
  filter_->ensureIds(ctx, ids_);
  EXPECT_FALSE(ctx.request_id.empty());
  EXPECT_THAT(ctx.trace_id, IsEmpty());
  EXPECT_THAT(ctx.traceparent, IsEmpty());
}

// --- response echo ---

TEST_F(ContextFilterTest, EchoReplacesUpstreamCopies) {
  TestRequest r({{"x-request-id", "r1"}, {"x-correlation-id", "c1"}});
  RequestContext ctx = run(r, kTrusted);
  TestResponse resp({{"X-Request-Id", "upstream-1"},
                     {"x-request-id", "upstream-2"},
                     {"x-correlation-id", "upstream-c"},
                     {"content-type", "application/json"}});
  filter_->onResponseHeaders(resp.head, ctx);
  EXPECT_THAT(valuesOf(resp.head.headers, "x-request-id"), ElementsAre("r1"));
  EXPECT_THAT(valuesOf(resp.head.headers, "x-correlation-id"), ElementsAre("c1"));
  EXPECT_THAT(valuesOf(resp.head.headers, "content-type"), ElementsAre("application/json"));
}

TEST_F(ContextFilterTest, EchoAddsIdsToResponsesWithoutThem) {
  RequestContext ctx;
  filter_->ensureIds(ctx, ids_);
  TestResponse resp;
  filter_->onResponseHeaders(resp.head, ctx);
  EXPECT_THAT(valuesOf(resp.head.headers, "x-request-id"), ElementsAre(ctx.request_id));
  EXPECT_THAT(valuesOf(resp.head.headers, "x-correlation-id"), ElementsAre(ctx.correlation_id));
  EXPECT_THAT(valuesOf(resp.head.headers, "x-user-id"), IsEmpty());
  EXPECT_THAT(valuesOf(resp.head.headers, "traceparent"), IsEmpty());
}

TEST_F(ContextFilterTest, EchoOffLeavesResponsesAlone) {
  ContextConfig config;
  config.echo_in_response = false;
  configure(config);
  RequestContext ctx;
  filter_->ensureIds(ctx, ids_);
  TestResponse resp({{"x-request-id", "upstream"}});
  filter_->onResponseHeaders(resp.head, ctx);
  EXPECT_THAT(valuesOf(resp.head.headers, "x-request-id"), ElementsAre("upstream"));
  EXPECT_THAT(valuesOf(resp.head.headers, "x-correlation-id"), IsEmpty());
}

}  // namespace
}  // namespace viscount
