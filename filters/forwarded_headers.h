#pragma once

// Client-identity headers: every header that claims the client's address, the scheme, host, port
// or path prefix it used belongs to the proxy. An untrusted peer's claims are removed and
// replaced by what viscount saw itself; a trusted peer's (another proxy of ours) pass, with our
// hop appended where the header is a list. Rules are in filters/README.md.

#include <string_view>

#include "config/config.h"
#include "proxy/http/http_message.h"

namespace viscount {

// x-forwarded-for, x-forwarded-proto, x-real-ip, forwarded, x-forwarded-host, -port, -prefix,
// -server, x-original-forwarded-for, x-client-ip, true-client-ip, cf-connecting-ip,
// x-cluster-client-ip, fastly-client-ip (case-insensitive).
bool isClientIdentityHeader(std::string_view name);

// Leaves exactly one x-forwarded-for and one x-forwarded-proto, and with `options` one x-real-ip
// and one forwarded. From an untrusted peer every identity header above is removed first; from a
// trusted peer the x-forwarded-for chain and the forwarded list are extended with `client_ip`, a
// single valid x-forwarded-proto and a single x-real-ip are kept, and the other identity headers
// pass. Underscore look-alikes of any of them are removed whoever sends them. Call after
// sanitizeRequestHeaders, so a Connection-listed identity header is already gone.
void setForwardedHeaders(RequestHead& head, std::string_view client_ip, bool trusted_peer,
                         const ContextConfig::Forwarded& options = {});

}  // namespace viscount
