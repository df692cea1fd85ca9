#include "telemetry/access_log_format.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>

#include "telemetry/time_format.h"
#include "tests/telemetry/telemetry_test_support.h"

namespace viscount {
namespace {

using nlohmann::json;
using testing::typicalRequest;

std::string jsonLine(const RequestContext& ctx) {
  std::string out;
  formatAccessLogJson(out, ctx);
  return out;
}

json parsedLine(const RequestContext& ctx) {
  const std::string line = jsonLine(ctx);
  EXPECT_TRUE(line.ends_with("\n"));
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "more than one line: " << line;
  return json::parse(line);
}

TEST(AccessLogJson, HasExactlyTheContractFields) {
  const json j = parsedLine(typicalRequest());
  // The contract's fields, plus the TLS facts added with TLS termination, the tunnel's protocol
  // added with upgrades and gRPC's status.
  const std::set<std::string> expected = {"ts",
                                          "request_id",
                                          "correlation_id",
                                          "user_id",
                                          "trace_id",
                                          "span_id",
                                          "method",
                                          "path",
                                          "protocol",
                                          "status",
                                          "duration_ms",
                                          "upstream_ms",
                                          "bytes_in",
                                          "bytes_out",
                                          "client_address",
                                          "upstream",
                                          "upstream_address",
                                          "error",
                                          "upgrade",
                                          "attempts",
                                          "tls_version",
                                          "client_cert_verified",
                                          "grpc_status",
                                          "grpc_message",
                                          "timings"};
  std::set<std::string> keys;
  for (const auto& [key, value] : j.items())
    keys.insert(key);
  EXPECT_EQ(keys, expected);
}

TEST(AccessLogJson, TimingsAreTypedNumbersOrNull) {
  RequestContext ctx = typicalRequest();
  json j = parsedLine(ctx);
  ASSERT_TRUE(j["timings"].is_object());
  EXPECT_EQ(j["timings"].size(), 4u);
  for (const char* key : {"queue_ms", "pool_wait_ms", "connect_ms", "upstream_headers_ms"})
    EXPECT_TRUE(j["timings"][key].is_null()) << key;
  ctx.queue_time = std::chrono::nanoseconds(0);
  ctx.pool_wait_time = std::chrono::microseconds(1500);
  ctx.connect_time = std::chrono::microseconds(250);
  ctx.upstream_headers_time = std::chrono::milliseconds(12);
  j = parsedLine(ctx);
  EXPECT_EQ(j["timings"]["queue_ms"], 0.0);
  EXPECT_DOUBLE_EQ(j["timings"]["pool_wait_ms"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(j["timings"]["connect_ms"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(j["timings"]["upstream_headers_ms"].get<double>(), 12.0);
  EXPECT_FALSE(j.contains("trail")) << "only asked-for lines carry a trail";
}

TEST(AccessLogJson, TheTrailTellsTheStoryInOrder) {
  RequestContext ctx = typicalRequest();
  ctx.trail.setOrigin(ctx.start);
  const auto at = [&](int micros) { return ctx.start + std::chrono::microseconds(micros); };
  ctx.trail.add(TrailEvent::kPoolWait, at(10));
  ctx.trail.add(TrailEvent::kConnectionReused, at(20), ErrorCode::kNone, 1500, 3);
  ctx.trail.add(TrailEvent::kAttemptFailed, at(300), ErrorCode::kUpstreamReset);
  ctx.trail.add(TrailEvent::kRetry, at(301), ErrorCode::kNone, 2);
  ctx.trail.add(TrailEvent::kConnectionNew, at(900), ErrorCode::kNone, 550);
  ctx.trail.add(TrailEvent::kTimeout, at(2000), ErrorCode::kUpstreamTimeout);
  ctx.trail.add(TrailEvent::kLocalReply, at(2001), ErrorCode::kUpstreamTimeout, 504);
  std::string line;
  formatAccessLogJson(line, ctx, ctx.path, true);
  const json j = json::parse(line);
  const json& trail = j["trail"];
  ASSERT_EQ(trail.size(), 7u) << line;
  EXPECT_EQ(trail[0], json::parse(R"({"at_ms":0.01,"event":"pool_wait"})"));
  EXPECT_EQ(
      trail[1],
      json::parse(
          R"({"at_ms":0.02,"event":"connection","reused":true,"age_ms":1500,"streams_before":3})"));
  EXPECT_EQ(trail[2],
            json::parse(R"({"at_ms":0.3,"event":"attempt_failed","error":"upstream_reset"})"));
  EXPECT_EQ(trail[3], json::parse(R"({"at_ms":0.301,"event":"retry","attempt":2})"));
  EXPECT_EQ(trail[4],
            json::parse(R"({"at_ms":0.9,"event":"connection","reused":false,"connect_ms":0.55})"));
  EXPECT_EQ(trail[5], json::parse(R"({"at_ms":2.0,"event":"timeout","error":"upstream_timeout"})"));
  EXPECT_EQ(
      trail[6],
      json::parse(
          R"({"at_ms":2.001,"event":"local_reply","error":"upstream_timeout","status":504})"));
}

TEST(AccessLogJson, TheOtherTrailEventsAsWritten) {
  // The events the story above does not have, compared as text: the order of their fields too.
  RequestContext ctx = typicalRequest();
  ctx.trail.setOrigin(ctx.start);
  const auto at = [&](int micros) { return ctx.start + std::chrono::microseconds(micros); };
  ctx.trail.add(TrailEvent::kQueued, at(5));
  ctx.trail.add(TrailEvent::kSlotGranted, at(1250));
  ctx.trail.add(TrailEvent::kResponseHead, at(4000), ErrorCode::kNone, 503);
  ctx.trail.add(TrailEvent::kClientGone, at(4100), ErrorCode::kClientDisconnected);
  std::string line;
  formatAccessLogJson(line, ctx, ctx.path, true);
  EXPECT_NE(line.find(R"(,"trail":[{"at_ms":0.005,"event":"queued"},)"
                      R"({"at_ms":1.250,"event":"slot_granted"},)"
                      R"({"at_ms":4.000,"event":"response_head","status":503},)"
                      R"({"at_ms":4.100,"event":"client_gone","error":"client_disconnected"}])"),
            std::string::npos)
      << line;
}

TEST(AccessLogJson, AFullTrailKeepsTheBeginningAndSaysHowMuchIsMissing) {
  RequestContext ctx = typicalRequest();
  ctx.trail.setOrigin(ctx.start);
  for (size_t i = 0; i < RequestTrail::kCapacity + 5; ++i)
    ctx.trail.add(TrailEvent::kRetry, ctx.start, ErrorCode::kNone, i + 2);
  std::string line;
  formatAccessLogJson(line, ctx, ctx.path, true);
  const json trail = json::parse(line)["trail"];
  ASSERT_EQ(trail.size(), RequestTrail::kCapacity + 1);
  EXPECT_EQ(trail[0]["attempt"], 2);
  EXPECT_EQ(trail.back(), json::parse(R"({"at_ms":null,"event":"trail_full","dropped":5})"));
}

TEST(AccessLogJson, TlsFactsAreNullAndFalseInCleartextAndSetOverTls) {
  RequestContext ctx = typicalRequest();
  json j = parsedLine(ctx);
  EXPECT_TRUE(j["tls_version"].is_null());
  EXPECT_EQ(j["client_cert_verified"], false);
  ctx.tls_version = "TLSv1.3";
  ctx.client_cert_verified = true;
  j = parsedLine(ctx);
  EXPECT_EQ(j["tls_version"], "TLSv1.3");
  EXPECT_EQ(j["client_cert_verified"], true);
}

TEST(AccessLogJson, GrpcStatusOnlyForGrpcAndMessageOnlyForAFailure) {
  RequestContext ctx = typicalRequest();
  ctx.grpc_status = 7;  // not a gRPC request: ignored
  json j = parsedLine(ctx);
  EXPECT_TRUE(j["grpc_status"].is_null());
  EXPECT_TRUE(j["grpc_message"].is_null());
  ctx.grpc = true;
  ctx.grpc_status = -1;  // gRPC, but no status reached the client
  j = parsedLine(ctx);
  EXPECT_TRUE(j["grpc_status"].is_null());
  ctx.grpc_status = 0;
  ctx.grpc_message = "ignored with OK";
  j = parsedLine(ctx);
  EXPECT_EQ(j["grpc_status"], 0);
  EXPECT_TRUE(j["grpc_message"].is_null());
  ctx.grpc_status = 7;
  ctx.grpc_message = "no \"access\"\n";
  j = parsedLine(ctx);
  EXPECT_EQ(j["grpc_status"], 7);
  EXPECT_EQ(j["grpc_message"], "no \"access\"\n");
}

TEST(AccessLogJson, TypesAndValuesOfATypicalRequest) {
  const json j = parsedLine(typicalRequest());
  EXPECT_EQ(j["ts"], "2026-11-23T10:00:00.123Z");
  EXPECT_EQ(j["request_id"], "0b6f3c1e-6d1b-4c27-9a8e-3f0c2d4b5a69");
  EXPECT_EQ(j["correlation_id"], "corr-42");
  EXPECT_EQ(j["user_id"], "alice@example.com");
  EXPECT_EQ(j["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(j["span_id"], "00f067aa0ba902b7");
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["path"], "/api/v1/orders?limit=20");
  EXPECT_EQ(j["protocol"], "HTTP/1.1");
  ASSERT_TRUE(j["status"].is_number_integer());
  EXPECT_EQ(j["status"], 200);
  ASSERT_TRUE(j["duration_ms"].is_number());
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 2.345);
  ASSERT_TRUE(j["upstream_ms"].is_number());
  EXPECT_DOUBLE_EQ(j["upstream_ms"].get<double>(), 1.8);
  ASSERT_TRUE(j["bytes_in"].is_number_unsigned());
  EXPECT_EQ(j["bytes_in"], 0);
  EXPECT_EQ(j["bytes_out"], 512);
  EXPECT_EQ(j["client_address"], "127.0.0.1:53712");
  EXPECT_EQ(j["upstream"], "app");
  EXPECT_EQ(j["upstream_address"], "127.0.0.1:8000");
  EXPECT_TRUE(j["error"].is_null());
  ASSERT_TRUE(j["attempts"].is_number_integer());
  EXPECT_EQ(j["attempts"], 1);
}

TEST(AccessLogJson, DurationsHaveThreeDecimals) {
  RequestContext ctx = typicalRequest();
  ctx.end = ctx.start + std::chrono::nanoseconds(12'345'600);
  ctx.upstream_end = ctx.upstream_start;  // zero time on the upstream
  const std::string line = jsonLine(ctx);
  EXPECT_NE(line.find(R"("duration_ms":12.346,)"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("upstream_ms":0.000,)"), std::string::npos) << line;
}

TEST(AccessLogJson, NullsWhereTheContractAllowsThem) {
  RequestContext ctx = typicalRequest();
  ctx.user_id.reset();
  ctx.trace_id.clear();
  ctx.span_id.clear();
  ctx.upstream_start.reset();
  ctx.upstream_end.reset();
  ctx.upstream_address.clear();
  ctx.attempts = 0;
  ctx.status = 0;
  ctx.error = ErrorCode::kClientDisconnected;
  const json j = parsedLine(ctx);
  EXPECT_TRUE(j["user_id"].is_null());
  EXPECT_TRUE(j["trace_id"].is_null());
  EXPECT_TRUE(j["span_id"].is_null());
  EXPECT_TRUE(j["upstream_ms"].is_null());
  EXPECT_EQ(j["upstream_address"], "");  // always a string
  EXPECT_EQ(j["status"], 0);
  EXPECT_EQ(j["attempts"], 0);
  EXPECT_EQ(j["error"], "client_disconnected");
}

TEST(AccessLogJson, UpgradeIsNullUnlessATunnel) {
  RequestContext ctx = typicalRequest();
  EXPECT_TRUE(parsedLine(ctx)["upgrade"].is_null());
  ctx.status = 101;
  ctx.upgrade = "websocket";
  ctx.error = ErrorCode::kTunnelIdleTimeout;
  const json j = parsedLine(ctx);
  EXPECT_EQ(j["upgrade"], "websocket");
  EXPECT_EQ(j["status"], 101);
  EXPECT_EQ(j["error"], "tunnel_idle_timeout");
}

TEST(AccessLogJson, EmptyUserIdFromATrustedSourceIsAString) {
  RequestContext ctx = typicalRequest();
  ctx.user_id = "";
  EXPECT_EQ(parsedLine(ctx)["user_id"], "");
}

TEST(AccessLogJson, ErrorCodesAndProtocols) {
  RequestContext ctx = typicalRequest();
  ctx.error = ErrorCode::kUpstreamTimeout;
  ctx.status = 504;
  ctx.protocol = Protocol::kHttp2;
  json j = parsedLine(ctx);
  EXPECT_EQ(j["error"], "upstream_timeout");
  EXPECT_EQ(j["protocol"], "HTTP/2");
  ctx.protocol = Protocol::kHttp10;
  EXPECT_EQ(parsedLine(ctx)["protocol"], "HTTP/1.0");
}

TEST(AccessLogJson, TimestampIsRfc3339UtcWithMilliseconds) {
  const std::regex format(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)");
  RequestContext ctx = typicalRequest();
  for (const WallTime t :
       {WallTime{}, std::chrono::system_clock::now(), testing::fixedWallTime()}) {
    ctx.start_wall = std::chrono::time_point_cast<WallTime::duration>(t);
    const std::string ts = parsedLine(ctx)["ts"];
    EXPECT_TRUE(std::regex_match(ts, format)) << ts;
  }
  std::string out;
  appendRfc3339Millis(out, WallTime{});
  EXPECT_EQ(out, "1970-01-01T00:00:00.000Z");
  out.clear();
  using namespace std::chrono;
  appendRfc3339Millis(out, sys_days{year{2024} / February / 29} + hours{23} + minutes{59} +
                               seconds{59} + microseconds{999'999});
  EXPECT_EQ(out, "2024-02-29T23:59:59.999Z");  // truncated, not rounded into the next day
}

TEST(AccessLogJson, HostileBytesStayOnOneValidLine) {
  RequestContext ctx = typicalRequest();
  ctx.path = std::string("/a\nb\r\"c\\d\x1b[31m\xFF\xC0\xAF\0e", 19);
  ctx.request_id = "id\n{\"forged\":true}";
  ctx.correlation_id = "\xED\xA0\x80";
  ctx.user_id = std::string(10000, 'u');
  ctx.method = "G\tET";
  ctx.client_address = "\x7f";
  const json j = parsedLine(ctx);
  const std::string path = j["path"];
  EXPECT_EQ(path, std::string("/a\nb\r\"c\\d\x1b[31m\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\0e", 25));
  EXPECT_EQ(j["request_id"], "id\n{\"forged\":true}");
  EXPECT_EQ(j["correlation_id"], "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(j["user_id"].get<std::string>().ends_with("...(truncated)"));
  EXPECT_LT(j["user_id"].get<std::string>().size(), 4200U);
  EXPECT_EQ(j["method"], "G\tET");
  EXPECT_FALSE(j.contains("forged"));
}

TEST(AccessLogPretty, HumanLineWithoutColour) {
  RequestContext ctx = typicalRequest();
  ctx.error = ErrorCode::kUpstreamReset;
  ctx.status = 502;
  std::string out;
  formatAccessLogPretty(out, ctx, false);
  EXPECT_EQ(out,
            "10:00:00.123 GET /api/v1/orders?limit=20 502 2.345ms "
            "0b6f3c1e-6d1b-4c27-9a8e-3f0c2d4b5a69 upstream_reset\n");
}

TEST(AccessLogPretty, ColourMarksTheStatusClass) {
  RequestContext ctx = typicalRequest();
  std::string ok;
  formatAccessLogPretty(ok, ctx, true);
  EXPECT_NE(ok.find("\x1b[32m200"), std::string::npos) << ok;
  ctx.status = 503;
  std::string bad;
  formatAccessLogPretty(bad, ctx, true);
  EXPECT_NE(bad.find("\x1b[31m503"), std::string::npos) << bad;
}

TEST(AccessLogPretty, ClientBytesCannotReachTheTerminalRaw) {
  RequestContext ctx = typicalRequest();
  ctx.path = "/\x1b]0;owned\x07\n\r";
  ctx.request_id = "\x1b[2J";
  std::string out;
  formatAccessLogPretty(out, ctx, false);
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos);
  EXPECT_EQ(out.find('\n'), out.size() - 1);
}

}  // namespace
}  // namespace viscount
