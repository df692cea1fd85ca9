#pragma once

// W3C Trace Context (https://www.w3.org/TR/trace-context/): reading an incoming `traceparent`
// and writing the one sent upstream. The proxy is one hop of the trace: it keeps the trace id,
// becomes the parent with a span id of its own, and keeps the flags.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace viscount {

// Views into the parsed header value.
struct TraceParent {
  std::string_view version;    // 2 lowercase hex, never "ff"
  std::string_view trace_id;   // 32 lowercase hex, not all zero
  std::string_view parent_id;  // 16 lowercase hex, not all zero
  std::string_view flags;      // 2 lowercase hex
};

constexpr size_t kTraceparentSize = 55;  // "00-" + 32 + "-" + 16 + "-" + 2
constexpr std::string_view kSampledFlags = "01";

// nullopt for anything the spec says to reject, in which case the caller starts a new trace.
// Surrounding spaces and tabs are ignored. Version 00 must be exactly 55 characters; a later
// version may carry more fields after a '-', which are ignored (we answer with version 00).
std::optional<TraceParent> parseTraceparent(std::string_view value);

// tracestate: at most 32 list members, each key=value as the spec defines them, no key twice.
// A value longer than kMaxTracestateSize is sent shortened, as the spec advises: members over
// kLongTracestateMember characters go first, then members from the end.
constexpr size_t kMaxTracestateMembers = 32;
constexpr size_t kMaxTracestateSize = 512;
constexpr size_t kLongTracestateMember = 128;

// False when `value` is not a valid tracestate (it is then dropped, never forwarded). When it is
// valid but too long, `*shortened` receives the list to send instead; otherwise it is left empty
// and `value` can be sent as it is.
bool checkTracestate(std::string_view value, std::string* shortened);

// "00-<trace_id>-<span_id>-<flags>"; the arguments must already be valid.
void formatTraceparent(std::string_view trace_id, std::string_view span_id, std::string_view flags,
                       char out[kTraceparentSize]);
std::string formatTraceparent(std::string_view trace_id, std::string_view span_id,
                              std::string_view flags);

}  // namespace viscount
