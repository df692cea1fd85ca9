#pragma once

// Timestamps for log lines, computed with calendar arithmetic only: gmtime_r takes glibc's
// timezone lock, which every worker would contend on once per request.

#include <string>

#include "proxy/http/request_context.h"

namespace viscount {

// RFC 3339 UTC with milliseconds: "2026-11-23T10:00:00.123Z".
void appendRfc3339Millis(std::string& out, WallTime time);

// Time of day, UTC, with milliseconds: "10:00:00.123". For human-readable terminal lines.
void appendClockMillis(std::string& out, WallTime time);

}  // namespace viscount
