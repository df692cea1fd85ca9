// gRPC in the filters: which requests are gRPC, grpc-timeout parsed and rewritten, the budget a
// client's deadline gives, and viscount's trailers-only answer.

#include <gtest/gtest.h>

#include <string>

#include "filters/grpc_deadline.h"
#include "filters/local_reply.h"
#include "proxy/http/grpc_status.h"
#include "proxy/http/grpc_wire.h"

namespace viscount {
namespace {

TEST(GrpcWire, ContentTypes) {
  EXPECT_TRUE(isGrpcContentType("application/grpc"));
  EXPECT_TRUE(isGrpcContentType("application/grpc+proto"));
  EXPECT_TRUE(isGrpcContentType("Application/GRPC+json"));
  EXPECT_TRUE(isGrpcContentType("application/grpc; charset=utf-8"));
  EXPECT_FALSE(isGrpcContentType("application/grpc-web"));
  EXPECT_FALSE(isGrpcContentType("application/grpc-web+proto"));
  EXPECT_FALSE(isGrpcContentType("application/grpcx"));
  EXPECT_FALSE(isGrpcContentType("application/json"));
  EXPECT_FALSE(isGrpcContentType(""));
}

TEST(GrpcWire, TimeoutUnitsRoundUpToMilliseconds) {
  using std::chrono::milliseconds;
  EXPECT_EQ(parseGrpcTimeout("1S"), milliseconds(1000));
  EXPECT_EQ(parseGrpcTimeout("2H"), milliseconds(7'200'000));
  EXPECT_EQ(parseGrpcTimeout("3M"), milliseconds(180'000));
  EXPECT_EQ(parseGrpcTimeout("250m"), milliseconds(250));
  EXPECT_EQ(parseGrpcTimeout("999001u"), milliseconds(1000));
  EXPECT_EQ(parseGrpcTimeout("1n"), milliseconds(1));
  EXPECT_EQ(parseGrpcTimeout("0m"), milliseconds(0));
  EXPECT_EQ(parseGrpcTimeout("99999999H"), milliseconds(int64_t{99'999'999} * 3'600'000));
}

TEST(GrpcWire, MalformedTimeouts) {
  for (const char* bad :
       {"", "S", "1", "1s", "1x", "-1S", "+1S", " 1S", "1S ", "123456789S", "1.5S", "1SS"}) {
    EXPECT_FALSE(parseGrpcTimeout(bad).has_value()) << bad;
  }
}

TEST(GrpcWire, TimeoutFormatting) {
  char out[kGrpcTimeoutChars];
  EXPECT_EQ(std::string(out, formatGrpcTimeout(out, 980)), "980m");
  EXPECT_EQ(std::string(out, formatGrpcTimeout(out, 99'999'999)), "99999999m");
  EXPECT_EQ(std::string(out, formatGrpcTimeout(out, 100'000'999)), "100000S");
  EXPECT_EQ(std::string(out, formatGrpcTimeout(out, UINT64_MAX)), "99999999S");
  for (uint64_t ms : {1ull, 980ull, 123'456'789ull}) {
    const auto parsed = parseGrpcTimeout(std::string(out, formatGrpcTimeout(out, ms)));
    ASSERT_TRUE(parsed);
    EXPECT_LE(static_cast<uint64_t>(parsed->count()), ms);  // never more than the budget
  }
}

TEST(GrpcWire, StatusAndMessage) {
  EXPECT_EQ(parseGrpcStatus("0"), 0);
  EXPECT_EQ(parseGrpcStatus("16"), 16);
  EXPECT_FALSE(parseGrpcStatus(""));
  EXPECT_FALSE(parseGrpcStatus("-1"));
  EXPECT_FALSE(parseGrpcStatus("7 "));
  std::string encoded;
  appendGrpcPercentEncoded(encoded, "a b%c\n\xc3\xbc");
  EXPECT_EQ(encoded, "a b%25c%0A%C3%BC");
  std::string decoded;
  appendGrpcPercentDecoded(decoded, encoded, 100);
  EXPECT_EQ(decoded, "a b%c\n\xc3\xbc");
  decoded.clear();
  appendGrpcPercentDecoded(decoded, "%zz%4", 100);  // malformed escapes stay as they are
  EXPECT_EQ(decoded, "%zz%4");
  decoded.clear();
  appendGrpcPercentDecoded(decoded, "abcdef", 3);
  EXPECT_EQ(decoded, "abc");
  EXPECT_EQ(grpcStatusName(7), "PERMISSION_DENIED");
  EXPECT_EQ(grpcStatusName(99), "UNKNOWN");
}

HeaderList withTimeout(std::string_view value) {
  HeaderList headers;
  headers.add("content-type", "application/grpc");
  headers.add("grpc-timeout", value);
  return headers;
}

TEST(GrpcDeadline, ClientTimeoutLowersTheBudgetAndIsTakenOut) {
  HeaderList headers = withTimeout("1S");
  const GrpcDeadline d = takeGrpcTimeout(headers, Duration(15'000), false);
  EXPECT_FALSE(d.malformed);
  ASSERT_TRUE(d.budget);
  EXPECT_EQ(*d.budget, Duration(980));  // a fiftieth early, at most 20 ms
  EXPECT_EQ(headers.find("grpc-timeout"), nullptr);
}

TEST(GrpcDeadline, TheRequestTimeoutStaysTheCeiling) {
  HeaderList headers = withTimeout("1H");
  EXPECT_EQ(takeGrpcTimeout(headers, Duration(15'000), false).budget, Duration(15'000));
  headers = withTimeout("1H");
  EXPECT_EQ(takeGrpcTimeout(headers, Duration(15'000), true).budget, Duration(15'000));
}

TEST(GrpcDeadline, SmallTimeoutsKeepAtLeastAMillisecond) {
  HeaderList headers = withTimeout("0m");
  EXPECT_EQ(takeGrpcTimeout(headers, Duration(15'000), false).budget, Duration(1));
  headers = withTimeout("100m");
  EXPECT_EQ(takeGrpcTimeout(headers, Duration(15'000), false).budget, Duration(98));
}

TEST(GrpcDeadline, WithoutATimeout) {
  HeaderList headers;
  EXPECT_EQ(takeGrpcTimeout(headers, Duration(15'000), false).budget, Duration(15'000));
  EXPECT_FALSE(takeGrpcTimeout(headers, Duration(15'000), true).budget.has_value());
}

TEST(GrpcDeadline, MalformedOrOneOfSeveralMalformed) {
  HeaderList headers = withTimeout("1s");
  EXPECT_TRUE(takeGrpcTimeout(headers, Duration(15'000), false).malformed);
  headers = withTimeout("1S");
  headers.add("grpc-timeout", "soon");
  EXPECT_TRUE(takeGrpcTimeout(headers, Duration(15'000), false).malformed);
}

TEST(GrpcLocalReply, TrailersOnlyWithStatusMessageAndPushback) {
  RequestHead request;
  request.protocol = Protocol::kHttp2;
  request.headers.add("content-type", "application/grpc+proto");
  const LocalReplyFormat& format =
      LocalReplyFormat::forRequest(request, isGrpcRequest(request.headers));
  RequestContext ctx;
  ctx.request_id = "req-1";
  ResponseHead head;
  std::string body;
  format.format(ErrorCode::kOverloaded, ctx, head, body);
  EXPECT_TRUE(body.empty());
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers.find("content-type")->value, "application/grpc");
  EXPECT_EQ(head.headers.find("grpc-status")->value, "14");
  EXPECT_EQ(head.headers.find("grpc-message")->value, "viscount: overloaded (request_id req-1)");
  EXPECT_EQ(head.headers.find("grpc-retry-pushback-ms")->value, "1000");
  EXPECT_FALSE(head.close_client);

  HeaderList trailers;
  ASSERT_TRUE(format.formatTrailers(ErrorCode::kUpstreamTimeout, ctx, trailers));
  EXPECT_EQ(trailers.find("grpc-status")->value, "4");
  EXPECT_EQ(trailers.find("grpc-retry-pushback-ms"), nullptr);
}

TEST(GrpcLocalReply, OnlyForGrpcOverHttp2) {
  RequestHead request;
  request.protocol = Protocol::kHttp11;
  request.headers.add("content-type", "application/grpc");
  EXPECT_EQ(&LocalReplyFormat::forRequest(request, true), &LocalReplyFormat::json());
  request.protocol = Protocol::kHttp2;
  EXPECT_NE(&LocalReplyFormat::forRequest(request, true), &LocalReplyFormat::json());
  EXPECT_EQ(&LocalReplyFormat::forRequest(request, false), &LocalReplyFormat::json());
  RequestHead web;
  web.protocol = Protocol::kHttp2;
  web.headers.add("content-type", "application/grpc-web");
  EXPECT_EQ(&LocalReplyFormat::forRequest(web, isGrpcRequest(web.headers)),
            &LocalReplyFormat::json());
  HeaderList trailers;
  EXPECT_FALSE(LocalReplyFormat::json().formatTrailers(ErrorCode::kUpstreamTimeout, {}, trailers));
}

TEST(GrpcStatusTable, TheIssuesMapping) {
  EXPECT_EQ(grpcStatusFor(ErrorCode::kUpstreamConnectFailed), GrpcStatus::kUnavailable);
  EXPECT_EQ(grpcStatusFor(ErrorCode::kUpstreamReset), GrpcStatus::kUnavailable);
  EXPECT_EQ(grpcStatusFor(ErrorCode::kUpstreamProtocolError), GrpcStatus::kUnavailable);
  EXPECT_EQ(grpcStatusFor(ErrorCode::kDraining), GrpcStatus::kUnavailable);
  EXPECT_EQ(grpcStatusFor(ErrorCode::kPoolTimeout), GrpcStatus::kUnavailable);
  EXPECT_EQ(grpcStatusFor(ErrorCode::kUpstreamTimeout), GrpcStatus::kDeadlineExceeded);
  EXPECT_EQ(grpcStatusFor(ErrorCode::kUpstreamConnectTimeout), GrpcStatus::kDeadlineExceeded);
  EXPECT_EQ(grpcStatusFor(ErrorCode::kBodyTooLarge), GrpcStatus::kResourceExhausted);
  EXPECT_EQ(grpcStatusFor(ErrorCode::kHeadersTooLarge), GrpcStatus::kResourceExhausted);
  EXPECT_EQ(grpcStatusFor(ErrorCode::kBadRequest), GrpcStatus::kInternal);
  EXPECT_EQ(grpcStatusFor(ErrorCode::kNotImplemented), GrpcStatus::kUnimplemented);
}

}  // namespace
}  // namespace viscount
