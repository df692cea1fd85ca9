#pragma once

// The few pieces of gRPC's HTTP/2 mapping (grpc/doc/PROTOCOL-HTTP2.md) viscount reads and writes:
// which requests are gRPC, the `grpc-timeout` header, `grpc-status` and the percent-encoding of
// `grpc-message`. Messages themselves pass through untouched.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/http/http_message.h"

namespace viscount {

// `application/grpc` or `application/grpc+proto` (any `+suffix`), in any case; parameters after
// `;` are allowed. gRPC-Web (`application/grpc-web…`) is not gRPC here.
bool isGrpcContentType(std::string_view value);
// The request's content-type says gRPC (the first content-type field decides).
bool isGrpcRequest(const HeaderList& headers);

// `grpc-timeout`: 1 to 8 digits and a unit (H, M, S, m, u, n). Parts of a millisecond round up,
// so a deadline never grows by parsing; nullopt when malformed.
std::optional<std::chrono::milliseconds> parseGrpcTimeout(std::string_view value);

// Writes `ms` as a `grpc-timeout` value (`250m`, or whole seconds, rounded down, past eight
// digits of milliseconds) into `out`, which holds at least kGrpcTimeoutChars; returns its length.
inline constexpr size_t kGrpcTimeoutChars = 9;
size_t formatGrpcTimeout(char* out, uint64_t ms);

// `grpc-status`: a decimal integer; nullopt when malformed.
std::optional<int> parseGrpcStatus(std::string_view value);

// grpc-message's encoding: bytes outside 0x20..0x7E and `%` become %XX.
void appendGrpcPercentEncoded(std::string& out, std::string_view text);
// Decodes %XX sequences (a malformed one stays as it is) and appends at most `limit` bytes.
void appendGrpcPercentDecoded(std::string& out, std::string_view text, size_t limit);

}  // namespace viscount
