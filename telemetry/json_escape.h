#pragma once

// JSON string encoding for values that come from the network (paths, ids, addresses). Whatever the
// bytes, the result is one line of valid JSON: control bytes are escaped, invalid UTF-8 becomes
// U+FFFD, and long values are cut at a character boundary with a visible marker, so a hostile
// request can neither break the line-per-request log format nor make one line unbounded.

#include <cstddef>
#include <string>
#include <string_view>

namespace viscount {

inline constexpr size_t kMaxJsonValueBytes = 4096;

// Marker placed inside the string when the value was longer than `max_bytes`.
inline constexpr std::string_view kTruncatedMarker = "...(truncated)";

// Appends `value` as a quoted JSON string. At most `max_bytes` bytes of the input are encoded.
void appendJsonString(std::string& out, std::string_view value,
                      size_t max_bytes = kMaxJsonValueBytes);

// The same encoding without the surrounding quotes, for human-readable lines that must stay one
// safe line on a terminal (no raw ESC, CR or LF from a client reaches it).
void appendJsonEscaped(std::string& out, std::string_view value,
                       size_t max_bytes = kMaxJsonValueBytes);

}  // namespace viscount
