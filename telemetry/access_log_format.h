#pragma once

// One access-log line from a completed request. The JSON form is the contract's schema (see
// docs/reference.md, "Access log"); the pretty form is for a developer watching a terminal.

#include <string>

#include "proxy/http/request_context.h"

namespace viscount {

// Appends one JSON object and its trailing '\n'.
void formatAccessLogJson(std::string& out, const RequestContext& ctx);

// Appends one human-readable line and its trailing '\n': time, method, path, status, duration,
// request id and error. With `colour`, ANSI colours mark the status class and errors.
void formatAccessLogPretty(std::string& out, const RequestContext& ctx, bool colour);

}  // namespace viscount
