// Context ids end to end: request id, correlation id, user id and W3C trace context, as the
// upstream sees them, as the client gets them back and as the access log records them.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
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

const std::regex kUuid4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
const std::regex kUuid7("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
const std::regex kTraceparent("^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$");

constexpr const char* kTraceId = "0af7651916cd43dd8448eb211c80319c";
constexpr const char* kParentId = "b7ad6b7169203331";
const std::string kValidTraceparent = std::string("00-") + kTraceId + "-" + kParentId + "-01";

// Bytes outside printable ASCII as \xNN, for failure messages.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

bool isUuid4(const std::string& s) {
  return std::regex_match(s, kUuid4);
}

struct Traceparent {
  std::string trace_id;
  std::string span_id;
  std::string flags;
};

// Parses a version-00 traceparent as the proxy must send it; nullopt if it is not one.
std::optional<Traceparent> parseSent(const std::string& value) {
  std::smatch m;
  if (!std::regex_match(value, m, kTraceparent)) return std::nullopt;
  return Traceparent{m[1], m[2], m[3]};
}

std::string withContext(uint16_t port, const std::string& context_yaml) {
  return defaultConfig(port) + "context:\n" + context_yaml;
}

// One request; the upstream's echo body parsed.
struct RoundTrip {
  HttpResponse response;
  json seen;
};

RoundTrip roundTrip(uint16_t port, const Headers& headers, const std::string& path = "/ctx") {
  auto r = httpRequest(port, "GET", path, headers);
  EXPECT_TRUE(r) << "no response for " << path;
  if (!r) return {};
  EXPECT_EQ(r->status, 200) << r->body;
  RoundTrip e{*r, json::object()};
  if (r->status == 200) e.seen = json::parse(r->body);
  return e;
}

// The access log line whose request_id is `id` (fails if there is not exactly one).
json logLineFor(ProxyUnderTest& proxy, size_t expected_lines, const std::string& id) {
  auto lines = proxy.accessLog(expected_lines);
  json found;
  size_t matches = 0;
  for (const auto& l : lines) {
    if (l.value("request_id", "") == id) {
      found = l;
      ++matches;
    }
  }
  EXPECT_EQ(matches, 1u) << "log lines for request id " << id;
  return found;
}

// ---- request id ----------------------------------------------------------------------------

TEST(Context, GeneratesUuid4RequestIdWhenAbsentAndEchoesIt) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto e = roundTrip(proxy.port(), {});
  const std::string id = e.response.header("x-request-id");
  EXPECT_TRUE(isUuid4(id)) << id;
  EXPECT_EQ(e.response.count("x-request-id"), 1u);
  EXPECT_EQ(e.seen["request_id"], id);
  EXPECT_EQ(e.seen["request_id_count"], 1);

  const std::string corr = e.response.header("x-correlation-id");
  EXPECT_TRUE(isUuid4(corr)) << corr;
  EXPECT_NE(corr, id);
  EXPECT_EQ(e.seen["correlation_id"], corr);
  EXPECT_EQ(e.seen["correlation_id_count"], 1);

  auto line = logLineFor(proxy, 1, id);
  EXPECT_EQ(line["correlation_id"], corr);

  // Two requests never share a generated id.
  auto e2 = roundTrip(proxy.port(), {});
  EXPECT_NE(e2.response.header("x-request-id"), id);
  EXPECT_NE(e2.response.header("x-correlation-id"), corr);
}

TEST(Context, PreservesWellFormedIdsFromTrustedPeer) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  const std::string max_len(128, 'a');  // id_pattern allows up to 128 characters
  for (const std::string& id : {std::string("req-123.ABC:z_9"), max_len}) {
    SCOPED_TRACE(id);
    auto e = roundTrip(proxy.port(), {{"X-Request-Id", id}, {"X-Correlation-Id", "corr-" + id}});
    EXPECT_EQ(e.response.header("x-request-id"), id);
    EXPECT_EQ(e.response.count("x-request-id"), 1u);
    EXPECT_EQ(e.seen["request_id"], id);
    EXPECT_EQ(e.seen["request_id_count"], 1);
    const std::string corr = "corr-" + id;
    if (corr.size() <= 128) {
      EXPECT_EQ(e.response.header("x-correlation-id"), corr);
      EXPECT_EQ(e.seen["correlation_id"], corr);
    } else {
      EXPECT_TRUE(isUuid4(e.response.header("x-correlation-id")));
      EXPECT_EQ(e.seen["correlation_id"], e.response.header("x-correlation-id"));
    }
  }
  auto line = logLineFor(proxy, 2, "req-123.ABC:z_9");
  EXPECT_EQ(line["correlation_id"], "corr-req-123.ABC:z_9");
}

TEST(Context, ReplacesMalformedRequestIds) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  const std::vector<std::string> malformed = {
      "has space inside",    std::string(200, 'a'),
      std::string(129, 'b'), "caf\xc3\xa9",
      "obs\x80text",         "\xff\xfe",
      "semi;colon",          "quote\"d",
      "slash/and\\back",     "{\"json\":1}",
      "tab\tinside",         "a,b",
      "<script>x</script>",
  };
  size_t n = 0;
  std::set<std::string> generated;
  for (const std::string& bad : malformed) {
    SCOPED_TRACE(printable(bad));
    auto e = roundTrip(proxy.port(), {{"x-request-id", bad}, {"x-correlation-id", bad}});
    ++n;
    const std::string id = e.response.header("x-request-id");
    EXPECT_NE(id, bad);
    EXPECT_TRUE(isUuid4(id)) << id;
    EXPECT_EQ(e.response.count("x-request-id"), 1u);
    EXPECT_EQ(e.seen["request_id"], id);
    EXPECT_EQ(e.seen["request_id_count"], 1);
    const std::string corr = e.response.header("x-correlation-id");
    EXPECT_TRUE(isUuid4(corr)) << corr;
    EXPECT_NE(corr, id);
    EXPECT_EQ(e.seen["correlation_id"], corr);
    EXPECT_EQ(e.seen["correlation_id_count"], 1);
    generated.insert(id);
  }
  EXPECT_EQ(generated.size(), malformed.size());
  auto lines = proxy.accessLog(n);
  ASSERT_EQ(lines.size(), n);
  for (const auto& l : lines) {
    EXPECT_EQ(generated.count(l["request_id"].get<std::string>()), 1u) << l.dump();
  }
}

TEST(Context, UntrustedPeerGetsNewIdsAndLosesUserId) {
  TestUpstream upstream;
  ProxyUnderTest proxy(withContext(upstream.port(), "  trusted_sources: [10.0.0.0/8]\n"));
  auto e = roundTrip(proxy.port(), {{"x-request-id", "client-chosen-id"},
                                    {"x-correlation-id", "client-chosen-corr"},
                                    {"x-user-id", "alice@example.com"},
                                    {"traceparent", kValidTraceparent}});
  const std::string id = e.response.header("x-request-id");
  EXPECT_TRUE(isUuid4(id)) << id;
  EXPECT_EQ(e.seen["request_id"], id);
  EXPECT_EQ(e.seen["request_id_count"], 1);
  EXPECT_TRUE(isUuid4(e.response.header("x-correlation-id")));
  EXPECT_NE(e.response.header("x-correlation-id"), "client-chosen-corr");
  EXPECT_EQ(e.seen["correlation_id"], e.response.header("x-correlation-id"));
  EXPECT_EQ(e.seen["user_id_count"], 0);
  // Trace context is continued from any peer: it correlates, it does not authorise.
  auto tp = parseSent(e.seen["traceparent"]);
  ASSERT_TRUE(tp) << e.seen["traceparent"];
  EXPECT_EQ(tp->trace_id, kTraceId);

  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].header("x-forwarded-for"), "127.0.0.1");

  auto line = logLineFor(proxy, 1, id);
  EXPECT_TRUE(line["user_id"].is_null()) << line.dump();
}

TEST(Context, PreserveIncomingFalseAlwaysGenerates) {
  TestUpstream upstream;
  ProxyUnderTest proxy(withContext(upstream.port(), R"(  request_id:
    preserve_incoming: false
)"));
  auto e = roundTrip(
      proxy.port(), {{"x-request-id", "well-formed-id"}, {"x-correlation-id", "well-formed-corr"}});
  const std::string id = e.response.header("x-request-id");
  EXPECT_NE(id, "well-formed-id");
  EXPECT_TRUE(isUuid4(id)) << id;
  EXPECT_EQ(e.seen["request_id"], id);
  EXPECT_EQ(e.seen["request_id_count"], 1);
  // The correlation id is governed by trust alone.
  EXPECT_EQ(e.response.header("x-correlation-id"), "well-formed-corr");
  EXPECT_EQ(e.seen["correlation_id"], "well-formed-corr");
}

TEST(Context, GeneratesUuid7WhenConfigured) {
  TestUpstream upstream;
  ProxyUnderTest proxy(withContext(upstream.port(), R"(  request_id:
    generate: uuid7
)"));
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::string previous;
  for (int i = 0; i < 5; ++i) {
    auto e = roundTrip(proxy.port(), {});
    const std::string id = e.response.header("x-request-id");
    ASSERT_TRUE(std::regex_match(id, kUuid7)) << id;
    EXPECT_EQ(e.seen["request_id"], id);
    // The first 48 bits are the Unix time in milliseconds.
    const std::string hex = id.substr(0, 8) + id.substr(9, 4);
    const auto ms = static_cast<int64_t>(std::stoull(hex, nullptr, 16));
    EXPECT_GE(ms, before - 1000) << id;
    EXPECT_LE(ms, before + 60'000) << id;
    EXPECT_NE(id, previous);
    previous = id;
    // Correlation ids are generated in the same format.
    EXPECT_TRUE(std::regex_match(e.response.header("x-correlation-id"), kUuid7))
        << e.response.header("x-correlation-id");
  }
}

TEST(Context, DuplicateIdHeadersCollapseToOne) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  // Byte-identical copies count as one.
  auto same = roundTrip(proxy.port(), {{"x-request-id", "dup-id"},
                                       {"X-Request-ID", "dup-id"},
                                       {"x-correlation-id", "dup-corr"},
                                       {"x-correlation-id", "dup-corr"}});
  EXPECT_EQ(same.response.header("x-request-id"), "dup-id");
  EXPECT_EQ(same.response.count("x-request-id"), 1u);
  EXPECT_EQ(same.seen["request_id"], "dup-id");
  EXPECT_EQ(same.seen["request_id_count"], 1);
  EXPECT_EQ(same.seen["correlation_id"], "dup-corr");
  EXPECT_EQ(same.seen["correlation_id_count"], 1);

  // Copies that differ are ambiguous: neither is believed.
  auto differ = roundTrip(proxy.port(), {{"x-request-id", "first-id"},
                                         {"x-request-id", "second-id"},
                                         {"x-correlation-id", "corr-a"},
                                         {"x-correlation-id", "corr-b"},
                                         {"x-user-id", "alice"},
                                         {"x-user-id", "mallory"}});
  const std::string id = differ.response.header("x-request-id");
  EXPECT_TRUE(isUuid4(id)) << id;
  EXPECT_EQ(differ.response.count("x-request-id"), 1u);
  EXPECT_EQ(differ.seen["request_id"], id);
  EXPECT_EQ(differ.seen["request_id_count"], 1);
  EXPECT_TRUE(isUuid4(differ.seen["correlation_id"])) << differ.seen["correlation_id"];
  EXPECT_EQ(differ.seen["correlation_id_count"], 1);
  EXPECT_EQ(differ.seen["user_id_count"], 0);

  // Identical user ids are one user id.
  auto users = roundTrip(proxy.port(), {{"x-user-id", "alice"}, {"x-user-id", "alice"}});
  EXPECT_EQ(users.seen["user_id"], "alice");
  EXPECT_EQ(users.seen["user_id_count"], 1);
}

TEST(Context, ConnectionHeaderCannotRemoveIds) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto e = roundTrip(proxy.port(), {{"x-request-id", "conn-id"},
                                    {"Connection", "keep-alive, x-request-id, x-correlation-id"}});
  EXPECT_EQ(e.seen["request_id"], "conn-id");
  EXPECT_EQ(e.seen["request_id_count"], 1);
  EXPECT_EQ(e.seen["correlation_id_count"], 1);
  EXPECT_EQ(e.seen["traceparent_count"], 1);
}

// ---- correlation and user ids --------------------------------------------------------------

TEST(Context, CorrelationIdKeptOrReplacedAndDistinctFromRequestId) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto kept = roundTrip(proxy.port(), {{"x-correlation-id", "order-42"}});
  EXPECT_EQ(kept.response.header("x-correlation-id"), "order-42");
  EXPECT_EQ(kept.seen["correlation_id"], "order-42");
  EXPECT_TRUE(isUuid4(kept.response.header("x-request-id")));

  auto replaced = roundTrip(proxy.port(), {{"x-correlation-id", "order 42"}});
  const std::string corr = replaced.response.header("x-correlation-id");
  EXPECT_TRUE(isUuid4(corr)) << corr;
  EXPECT_EQ(replaced.seen["correlation_id"], corr);

  // A kept request id is not copied into a new correlation id.
  auto only_rid = roundTrip(proxy.port(), {{"x-request-id", "only-request-id"}});
  EXPECT_EQ(only_rid.seen["request_id"], "only-request-id");
  const std::string new_corr = only_rid.seen["correlation_id"];
  EXPECT_TRUE(isUuid4(new_corr)) << new_corr;
  EXPECT_EQ(only_rid.response.header("x-correlation-id"), new_corr);

  auto line = logLineFor(proxy, 3, "only-request-id");
  EXPECT_EQ(line["correlation_id"], new_corr);
}

TEST(Context, UserIdForwardedFromTrustedPeer) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto with =
      roundTrip(proxy.port(), {{"x-request-id", "user-req"}, {"X-User-Id", "alice@example.com"}});
  EXPECT_EQ(with.seen["user_id"], "alice@example.com");
  EXPECT_EQ(with.seen["user_id_count"], 1);
  // User ids are never generated.
  auto without = roundTrip(proxy.port(), {{"x-request-id", "anon-req"}});
  EXPECT_EQ(without.seen["user_id_count"], 0);
  // One that does not match user_id.pattern is stripped.
  auto bad = roundTrip(proxy.port(), {{"x-request-id", "bad-user-req"}, {"x-user-id", "a b"}});
  EXPECT_EQ(bad.seen["user_id_count"], 0);

  EXPECT_EQ(logLineFor(proxy, 3, "user-req")["user_id"], "alice@example.com");
  EXPECT_TRUE(logLineFor(proxy, 3, "anon-req")["user_id"].is_null());
  EXPECT_TRUE(logLineFor(proxy, 3, "bad-user-req")["user_id"].is_null());
}

// ---- trace context -------------------------------------------------------------------------

TEST(Context, ValidTraceparentIsContinued) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  for (const std::string& flags : std::vector<std::string>{"01", "00"}) {
    SCOPED_TRACE(flags);
    const std::string incoming = std::string("00-") + kTraceId + "-" + kParentId + "-" + flags;
    const std::string rid = "trace-" + flags;
    auto e = roundTrip(proxy.port(), {{"x-request-id", rid},
                                      {"traceparent", incoming},
                                      {"tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}});
    EXPECT_EQ(e.seen["traceparent_count"], 1);
    auto tp = parseSent(e.seen["traceparent"]);
    ASSERT_TRUE(tp) << e.seen["traceparent"];
    EXPECT_EQ(tp->trace_id, kTraceId);
    EXPECT_NE(tp->span_id, kParentId);
    EXPECT_NE(tp->span_id, "0000000000000000");
    EXPECT_EQ(tp->flags, flags);
    EXPECT_EQ(e.seen["tracestate"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");

    auto line = logLineFor(proxy, flags == "01" ? 1 : 2, rid);
    EXPECT_EQ(line["trace_id"], kTraceId);
    EXPECT_EQ(line["span_id"], tp->span_id);
  }
  // A later version may carry more fields; the proxy continues it and sends version 00.
  auto future =
      roundTrip(proxy.port(), {{"traceparent", std::string("cc-") + kTraceId + "-" + kParentId +
                                                   "-01-what-the-future-holds"}});
  auto tp = parseSent(future.seen["traceparent"]);
  ASSERT_TRUE(tp) << future.seen["traceparent"];
  EXPECT_EQ(tp->trace_id, kTraceId);
}

TEST(Context, SeveralTracestateHeadersAreJoined) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto e =
      roundTrip(proxy.port(),
                {{"traceparent", kValidTraceparent}, {"tracestate", "a=1"}, {"tracestate", "b=2"}});
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].count("tracestate"), 1u);
  EXPECT_EQ(reqs[0].header("tracestate"), "a=1,b=2");
}

TEST(Context, InvalidTraceparentStartsNewTrace) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  const std::string upper = "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01";
  const std::vector<std::string> invalid = {
      upper,
      std::string("00-") + std::string(32, '0') + "-" + kParentId + "-01",  // zero trace id
      std::string("00-") + kTraceId + "-" + std::string(16, '0') + "-01",   // zero parent id
      std::string("00-") + kTraceId + "-" + kParentId + "-1",               // too short
      std::string("00-") + kTraceId + "-" + kParentId + "-01-extra",        // v00 too long
      std::string("00-") + std::string(kTraceId).substr(1) + "-" + kParentId + "-01",
      std::string("ff-") + kTraceId + "-" + kParentId + "-01",  // version ff
      std::string("00_") + kTraceId + "_" + kParentId + "_01",  // wrong separators
      "garbage",
  };
  std::set<std::string> trace_ids;
  for (const std::string& bad : invalid) {
    SCOPED_TRACE(bad);
    auto e = roundTrip(proxy.port(), {{"traceparent", bad}, {"tracestate", "vendor=opaque"}});
    EXPECT_EQ(e.seen["traceparent_count"], 1);
    auto tp = parseSent(e.seen["traceparent"]);
    ASSERT_TRUE(tp) << e.seen["traceparent"];
    EXPECT_NE(tp->trace_id, kTraceId);
    EXPECT_NE(tp->trace_id, std::string(32, '0'));
    EXPECT_NE(tp->span_id, std::string(16, '0'));
    EXPECT_EQ(tp->flags, "01");
    // A tracestate means nothing without its traceparent: it is dropped.
    EXPECT_EQ(e.seen["tracestate"], "");
    auto reqs = upstream.requests();
    EXPECT_EQ(reqs.back().count("tracestate"), 0u);
    trace_ids.insert(tp->trace_id);
  }
  EXPECT_EQ(trace_ids.size(), invalid.size());

  // Two differing traceparent headers are ambiguous.
  auto two = roundTrip(
      proxy.port(), {{"traceparent", kValidTraceparent},
                     {"traceparent", std::string("00-") + kTraceId + "-" + "1111111111111111-01"}});
  auto tp = parseSent(two.seen["traceparent"]);
  ASSERT_TRUE(tp);
  EXPECT_NE(tp->trace_id, kTraceId);
  EXPECT_EQ(two.seen["traceparent_count"], 1);
}

TEST(Context, AbsentTraceparentStartsTrace) {
  TestUpstream upstream;
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto e = roundTrip(proxy.port(), {{"x-request-id", "no-trace"}, {"tracestate", "orphan=1"}});
  EXPECT_EQ(e.seen["traceparent_count"], 1);
  auto tp = parseSent(e.seen["traceparent"]);
  ASSERT_TRUE(tp) << e.seen["traceparent"];
  EXPECT_EQ(tp->flags, "01");
  EXPECT_EQ(e.seen["tracestate"], "");
  auto line = logLineFor(proxy, 1, "no-trace");
  EXPECT_EQ(line["trace_id"], tp->trace_id);
  EXPECT_EQ(line["span_id"], tp->span_id);
}

TEST(Context, TraceContextOffLeavesHeadersUntouched) {
  TestUpstream upstream;
  ProxyUnderTest proxy(withContext(upstream.port(), "  trace_context: false\n"));
  const std::string odd = "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01";
  auto e =
      roundTrip(proxy.port(),
                {{"x-request-id", "untraced"}, {"traceparent", odd}, {"tracestate", "keep=me"}});
  EXPECT_EQ(e.seen["traceparent"], odd);
  EXPECT_EQ(e.seen["traceparent_count"], 1);
  EXPECT_EQ(e.seen["tracestate"], "keep=me");
  auto none = roundTrip(proxy.port(), {{"x-request-id", "untraced-2"}});
  EXPECT_EQ(none.seen["traceparent_count"], 0);

  auto line = logLineFor(proxy, 2, "untraced");
  EXPECT_TRUE(line["trace_id"].is_null()) << line.dump();
  EXPECT_TRUE(line["span_id"].is_null()) << line.dump();
}

// ---- configuration -------------------------------------------------------------------------

TEST(Context, CustomHeaderNames) {
  TestUpstream upstream;
  ProxyUnderTest proxy(withContext(upstream.port(), R"(  request_id:
    header: X-Req
  correlation_id:
    header: x-corr
  user_id:
    header: x-uid
)"));
  auto r = httpRequest(proxy.port(), "GET", "/custom",
                       {{"x-req", "custom-id"}, {"X-Corr", "custom-corr"}, {"x-uid", "bob"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("x-req"), "custom-id");
  EXPECT_EQ(r->count("x-req"), 1u);
  EXPECT_EQ(r->header("x-corr"), "custom-corr");
  EXPECT_EQ(r->count("x-request-id"), 0u);
  EXPECT_EQ(r->count("x-correlation-id"), 0u);
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].header("x-req"), "custom-id");
  EXPECT_EQ(reqs[0].count("x-req"), 1u);
  EXPECT_EQ(reqs[0].header("x-corr"), "custom-corr");
  EXPECT_EQ(reqs[0].header("x-uid"), "bob");
  EXPECT_EQ(reqs[0].count("x-request-id"), 0u);

  // A generated id goes out under the custom name.
  auto g = httpRequest(proxy.port(), "GET", "/custom", {{"x-req", "bad id"}});
  ASSERT_TRUE(g);
  EXPECT_TRUE(isUuid4(g->header("x-req"))) << g->header("x-req");
  reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].header("x-req"), g->header("x-req"));
  EXPECT_EQ(reqs[1].count("x-req"), 1u);

  auto line = logLineFor(proxy, 2, "custom-id");
  EXPECT_EQ(line["correlation_id"], "custom-corr");
  EXPECT_EQ(line["user_id"], "bob");
}

// ---- responses -----------------------------------------------------------------------------

TEST(Context, IdsEchoedOnProxyErrorResponse) {
  RefusingPort dead;
  const uint16_t dead_port = dead.port();
  ProxyUnderTest proxy(defaultConfig(dead_port));
  auto r = httpRequest(proxy.port(), "GET", "/down",
                       {{"x-request-id", "err-id-1"}, {"x-correlation-id", "err-corr-1"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(r->header("x-request-id"), "err-id-1");
  EXPECT_EQ(r->count("x-request-id"), 1u);
  EXPECT_EQ(r->header("x-correlation-id"), "err-corr-1");
  EXPECT_EQ(r->header("content-type"), "application/json");
  EXPECT_FALSE(r->header("proxy-status").empty());
  EXPECT_NE(r->header("proxy-status").find("connection_refused"), std::string::npos)
      << r->header("proxy-status");
  json body = json::parse(r->body);
  EXPECT_EQ(body["error"], "upstream_connect_failed");
  EXPECT_EQ(body["status"], 502);
  EXPECT_EQ(body["request_id"], "err-id-1");

  // A generated id is the same in the header, the body and the log.
  auto g = httpRequest(proxy.port(), "GET", "/down");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 502);
  const std::string id = g->header("x-request-id");
  EXPECT_TRUE(isUuid4(id)) << id;
  EXPECT_TRUE(isUuid4(g->header("x-correlation-id")));
  EXPECT_EQ(json::parse(g->body)["request_id"], id);
  auto line = logLineFor(proxy, 2, id);
  EXPECT_EQ(line["status"], 502);
  EXPECT_EQ(line["correlation_id"], g->header("x-correlation-id"));

  // A request the parser rejects still carries ids.
  RawConnection c(proxy.port());
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n"));
  auto bad = c.readResponse();
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_TRUE(isUuid4(bad->header("x-request-id"))) << bad->header("x-request-id");
  EXPECT_FALSE(bad->header("x-correlation-id").empty());
  EXPECT_EQ(json::parse(bad->body)["request_id"], bad->header("x-request-id"));
}

TEST(Context, EchoInResponseOffOmitsIds) {
  RefusingPort dead;
  const uint16_t dead_port = dead.port();
  TestUpstream upstream;
  const std::string yaml = withPort(R"(workers: 2
listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
  - name: broken
    address: 127.0.0.1:0
    upstream: dead
upstreams:
  - name: app
    url: http://127.0.0.1:{port}
  - name: dead
    url: http://127.0.0.1:)" + std::to_string(dead_port) +
                                        R"(
admin:
  address: 127.0.0.1:0
context:
  echo_in_response: false
)",
                                    upstream.port());
  ProxyUnderTest proxy(yaml);
  auto e = roundTrip(proxy.port(0), {{"x-request-id", "quiet-id"}});
  EXPECT_EQ(e.response.count("x-request-id"), 0u);
  EXPECT_EQ(e.response.count("x-correlation-id"), 0u);
  EXPECT_EQ(e.seen["request_id"], "quiet-id");
  EXPECT_EQ(e.seen["correlation_id_count"], 1);

  auto err = httpRequest(proxy.port(1), "GET", "/", {{"x-request-id", "quiet-err"}});
  ASSERT_TRUE(err);
  EXPECT_EQ(err->status, 502);
  EXPECT_EQ(err->count("x-request-id"), 0u);
  EXPECT_EQ(err->count("x-correlation-id"), 0u);
  EXPECT_EQ(json::parse(err->body)["request_id"], "quiet-err");
}

TEST(Context, UpstreamIdHeadersReplacedByOurs) {
  TestUpstream upstream([](const ReceivedRequest&) {
    UpstreamReply r;
    r.headers = {{"X-Request-Id", "upstream-made-this"},
                 {"x-request-id", "and-this"},
                 {"x-correlation-id", "upstream-corr"}};
    r.body = "ok";
    return r;
  });
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  auto r = httpRequest(proxy.port(), "GET", "/", {{"x-request-id", "ours"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->count("x-request-id"), 1u);
  EXPECT_EQ(r->header("x-request-id"), "ours");
  EXPECT_EQ(r->count("x-correlation-id"), 1u);
  EXPECT_NE(r->header("x-correlation-id"), "upstream-corr");
  EXPECT_EQ(r->header("x-correlation-id"), upstream.requests().at(0).header("x-correlation-id"));
}

}  // namespace
}  // namespace viscount::test
