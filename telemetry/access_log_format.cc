#include "telemetry/access_log_format.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <string_view>

#include "telemetry/append_number.h"
#include "telemetry/json_escape.h"
#include "telemetry/terminal_colour.h"
#include "telemetry/time_format.h"

namespace viscount {
namespace {

// Milliseconds with exactly three decimals, by integer arithmetic: cheaper than a float formatter
// and never printed in exponent form.
void appendMillis(std::string& out, double ms) {
  int64_t micros = std::llround(ms * 1000.0);
  if (micros < 0) {
    out.push_back('-');
    micros = -micros;
  }
  appendInt(out, micros / 1000);
  const int frac = static_cast<int>(micros % 1000);
  const char digits[4] = {'.', static_cast<char>('0' + frac / 100),
                          static_cast<char>('0' + frac / 10 % 10),
                          static_cast<char>('0' + frac % 10)};
  out.append(digits, sizeof digits);
}

// Microseconds as milliseconds with three decimals, all in integers, written backwards from
// `end`; returns the first character. The timings are on every line, so they skip
// appendMillis's floating point.
char* writeMicrosAsMillis(char* end, uint64_t micros) {
  char* p = end;
  for (int i = 0; i < 3; ++i) {
    *--p = static_cast<char>('0' + micros % 10);
    micros /= 10;
  }
  *--p = '.';
  do {
    *--p = static_cast<char>('0' + micros % 10);
    micros /= 10;
  } while (micros != 0);
  return p;
}

void appendMicrosAsMillis(std::string& out, uint64_t micros) {
  char text[24];
  char* end = text + sizeof text;
  const char* p = writeMicrosAsMillis(end, micros);
  out.append(p, static_cast<size_t>(end - p));
}

// Writes `key` and the duration (or null) into a buffer the caller sized for them. The key's
// length is a constant, so its copy is a few moves.
template <size_t N>
char* writeTiming(char* at, const char (&key)[N],
                  const std::optional<std::chrono::nanoseconds>& d) {
  std::memcpy(at, key, N - 1);
  at += N - 1;
  if (!d) {
    std::memcpy(at, "null", 4);
    return at + 4;
  }
  const int64_t ns = std::max<int64_t>(d->count(), 0);
  char digits[24];
  char* end = digits + sizeof digits;
  const char* p = writeMicrosAsMillis(end, static_cast<uint64_t>((ns + 500) / 1000));
  const auto n = static_cast<size_t>(end - p);
  std::memcpy(at, p, n);
  return at + n;
}

// The object is on every line: formatted in one stack buffer and appended once.
void appendTimings(std::string& out, const RequestContext& ctx) {
  char text[192];  // the keys (about 90 bytes) and four numbers of at most 24 characters
  char* at = text;
  at = writeTiming(at, R"(,"timings":{"queue_ms":)", ctx.queue_time);
  at = writeTiming(at, R"(,"pool_wait_ms":)", ctx.pool_wait_time);
  at = writeTiming(at, R"(,"connect_ms":)", ctx.connect_time);
  at = writeTiming(at, R"(,"upstream_headers_ms":)", ctx.upstream_headers_time);
  *at++ = '}';
  out.append(text, static_cast<size_t>(at - text));
}

// Present only when logging.headers names headers for this side.
void appendLoggedHeaders(std::string& out, std::string_view field,
                         const RequestContext::LoggedHeaders& headers) {
  if (headers.empty()) return;
  out.append(",\"");
  out.append(field);
  out.append("\":{");
  bool first = true;
  for (const auto& [name, value] : headers) {
    if (!first) out.push_back(',');
    first = false;
    appendJsonString(out, name);
    out.push_back(':');
    if (value) {
      appendJsonString(out, *value);
    } else {
      out.append("null");
    }
  }
  out.push_back('}');
}

void appendErrorField(std::string& out, ErrorCode code) {
  out.append(R"(,"error":")");
  out.append(errorInfo(code).code);
  out.push_back('"');
}

// How each trail event is written: its name (with any fixed fields), whether the error code
// follows, and the names of the value and the count when they are written. One row per event, in
// TrailEvent's order, so the fields of an event are said in one place.
struct TrailEventFormat {
  std::string_view head;
  bool error;
  std::string_view value_key;  // empty: the value is not written
  bool value_is_micros;        // written as milliseconds with three decimals
  std::string_view count_key;  // empty: the count is not written
};

constexpr TrailEventFormat kTrailEventFormats[] = {
    {R"("queued")", false, {}, false, {}},
    {R"("slot_granted")", false, {}, false, {}},
    {R"("pool_wait")", false, {}, false, {}},
    {R"("connection","reused":false)", false, R"(,"connect_ms":)", true, {}},
    {R"("connection","reused":true)", false, R"(,"age_ms":)", false, R"(,"streams_before":)"},
    {R"("response_head")", false, R"(,"status":)", false, {}},
    {R"("attempt_failed")", true, {}, false, {}},
    {R"("retry")", false, R"(,"attempt":)", false, {}},
    {R"("timeout")", true, {}, false, {}},
    {R"("local_reply")", true, R"(,"status":)", false, {}},
    {R"("client_gone")", true, {}, false, {}},
};
static_assert(std::size(kTrailEventFormats) == static_cast<size_t>(TrailEvent::kClientGone) + 1,
              "one format per trail event");

void appendTrailEntry(std::string& out, const TrailEntry& e) {
  const TrailEventFormat& f = kTrailEventFormats[static_cast<size_t>(e.event)];
  out.append(R"({"at_ms":)");
  appendMicrosAsMillis(out, e.at_us);
  out.append(R"(,"event":)");
  out.append(f.head);
  if (f.error) appendErrorField(out, e.code);
  if (!f.value_key.empty()) {
    out.append(f.value_key);
    if (f.value_is_micros) {
      appendMicrosAsMillis(out, e.value);
    } else {
      appendInt(out, static_cast<int64_t>(e.value));
    }
  }
  if (!f.count_key.empty()) {
    out.append(f.count_key);
    appendInt(out, e.count);
  }
  out.push_back('}');
}

void appendTrail(std::string& out, const RequestContext& ctx) {
  out.append(R"(,"trail":[)");
  bool first = true;
  for (const TrailEntry& e : ctx.trail) {
    if (!first) out.push_back(',');
    first = false;
    appendTrailEntry(out, e);
  }
  if (ctx.trail.dropped() > 0) {
    // The trail keeps a request's first events; say that more happened than it holds.
    if (!first) out.push_back(',');
    out.append(R"({"at_ms":null,"event":"trail_full","dropped":)");
    appendInt(out, ctx.trail.dropped());
    out.push_back('}');
  }
  out.push_back(']');
}

void appendStringOrNull(std::string& out, std::string_view value) {
  if (value.empty()) {
    out.append("null");
  } else {
    appendJsonString(out, value);
  }
}

std::string_view statusColour(int status) {
  if (status >= 500) return colour::kRed;
  if (status >= 400) return colour::kYellow;
  if (status >= 300) return colour::kCyan;
  if (status >= 200) return colour::kGreen;
  return colour::kMagenta;  // 0: nothing could be sent
}

// grpc_status: what the client was told, null for a request that is not gRPC or got none;
// grpc_message: only with a status other than 0.
void appendGrpcFields(std::string& out, const RequestContext& ctx) {
  out.append(R"(,"grpc_status":)");
  if (ctx.grpc && ctx.grpc_status >= 0) {
    appendInt(out, ctx.grpc_status);
  } else {
    out.append("null");
  }
  out.append(R"(,"grpc_message":)");
  appendStringOrNull(out, ctx.grpc && ctx.grpc_status > 0 ? ctx.grpc_message : "");
}

}  // namespace

void formatAccessLogJson(std::string& out, const RequestContext& ctx, std::string_view path,
                         bool trail) {
  out.append(R"({"ts":")");
  appendRfc3339Millis(out, ctx.start_wall);
  out.append(R"(","request_id":)");
  appendJsonString(out, ctx.request_id);
  out.append(R"(,"correlation_id":)");
  appendJsonString(out, ctx.correlation_id);
  out.append(R"(,"user_id":)");
  if (ctx.user_id) {
    appendJsonString(out, *ctx.user_id);
  } else {
    out.append("null");
  }
  out.append(R"(,"trace_id":)");
  appendStringOrNull(out, ctx.trace_id);
  out.append(R"(,"span_id":)");
  appendStringOrNull(out, ctx.span_id);
  out.append(R"(,"method":)");
  appendJsonString(out, ctx.method);
  out.append(R"(,"path":)");
  appendJsonString(out, path);
  out.append(R"(,"protocol":")");
  out.append(toString(ctx.protocol));
  out.append(R"(","status":)");
  appendInt(out, ctx.status);
  out.append(R"(,"duration_ms":)");
  appendMillis(out, ctx.durationMs());
  out.append(R"(,"upstream_ms":)");
  if (const auto upstream_ms = ctx.upstreamMs()) {
    appendMillis(out, *upstream_ms);
  } else {
    out.append("null");
  }
  out.append(R"(,"bytes_in":)");
  appendInt(out, ctx.bytes_in);
  out.append(R"(,"bytes_out":)");
  appendInt(out, ctx.bytes_out);
  out.append(R"(,"client_address":)");
  appendJsonString(out, ctx.client_address);
  out.append(R"(,"upstream":)");
  appendJsonString(out, ctx.upstream);
  out.append(R"(,"upstream_address":)");
  appendJsonString(out, ctx.upstream_address);
  out.append(R"(,"error":)");
  if (ctx.error == ErrorCode::kNone) {
    out.append("null");
  } else {
    appendJsonString(out, errorInfo(ctx.error).code);
  }
  out.append(R"(,"upgrade":)");
  appendStringOrNull(out, ctx.upgrade);
  out.append(R"(,"attempts":)");
  appendInt(out, ctx.attempts);
  out.append(R"(,"tls_version":)");
  appendStringOrNull(out, ctx.tls_version);
  out.append(ctx.client_cert_verified ? R"(,"client_cert_verified":true)"
                                      : R"(,"client_cert_verified":false)");
  appendGrpcFields(out, ctx);
  appendTimings(out, ctx);
  appendLoggedHeaders(out, "request_headers", ctx.logged_request_headers);
  appendLoggedHeaders(out, "response_headers", ctx.logged_response_headers);
  if (trail) appendTrail(out, ctx);
  out.append("}\n");
}

void formatAccessLogPretty(std::string& out, const RequestContext& ctx, std::string_view path,
                           bool colour) {
  const auto paint = [&](std::string_view code) {
    if (colour) out.append(code);
  };
  paint(colour::kDim);
  appendClockMillis(out, ctx.start_wall);
  paint(colour::kReset);
  out.push_back(' ');
  paint(colour::kBold);
  appendJsonEscaped(out, ctx.method, 32);
  paint(colour::kReset);
  out.push_back(' ');
  appendJsonEscaped(out, path, 512);
  out.push_back(' ');
  paint(statusColour(ctx.status));
  appendInt(out, ctx.status);
  paint(colour::kReset);
  out.push_back(' ');
  appendMillis(out, ctx.durationMs());
  out.append("ms ");
  paint(colour::kDim);
  appendJsonEscaped(out, ctx.request_id, 128);
  paint(colour::kReset);
  if (ctx.error != ErrorCode::kNone) {
    out.push_back(' ');
    paint(colour::kRed);
    out.append(errorInfo(ctx.error).code);
    paint(colour::kReset);
  }
  out.push_back('\n');
}

}  // namespace viscount
