#pragma once

// One access-log line from a completed request. The JSON form is the contract's schema (see
// docs/reference.md, "Access log"); the pretty form is for a developer watching a terminal.

#include <string>
#include <string_view>

#include "proxy/http/request_context.h"

namespace viscount {

// Appends one JSON object and its trailing '\n'. `path` is what the line shows as the target: the
// request's own, or a copy with secrets redacted (telemetry/query_redaction.h).
// With `trail`, the line carries the request's trail (the access log asks for it on failures and
// slow requests: see AccessLog).
void formatAccessLogJson(std::string& out, const RequestContext& ctx, std::string_view path,
                         bool trail);
inline void formatAccessLogJson(std::string& out, const RequestContext& ctx) {
  formatAccessLogJson(out, ctx, ctx.path, false);
}

// Appends one human-readable line and its trailing '\n': time, method, path, status, duration,
// request id and error. With `colour`, ANSI colours mark the status class and errors.
void formatAccessLogPretty(std::string& out, const RequestContext& ctx, std::string_view path,
                           bool colour);
inline void formatAccessLogPretty(std::string& out, const RequestContext& ctx, bool colour) {
  formatAccessLogPretty(out, ctx, ctx.path, colour);
}

}  // namespace viscount
