#pragma once

// A received content-length, on either side: the server reads it in request heads, the client
// in response heads. HTTP/2 frames bodies by itself, so the field only declares a length; the
// codecs keep it in the head for filters and the access log but mark it removed, and the side
// that writes the message on rebuilds its framing from the length it knows.

#include <cstdint>
#include <optional>
#include <string_view>

#include "proxy/http/http_message.h"

namespace viscount::h2 {

// Decimal digits only (no sign, no spaces, not empty) that fit in 64 bits.
std::optional<uint64_t> parseContentLength(std::string_view value);

// Adds a received content-length field to `headers`, marked removed, and sets `*length` from
// its value. False (and `*length` untouched) when the value is no length.
bool takeContentLength(HeaderList& headers, std::string_view value,
                       std::optional<uint64_t>* length);

}  // namespace viscount::h2
