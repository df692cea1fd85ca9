#pragma once

// The two kinds of network endpoint a config names: a socket to bind (listeners, admin) and an
// upstream URL to connect to. Binding never resolves names, so a bind address must be numeric
// (plus the conveniences "localhost" and "*"); an upstream may be a DNS name.

#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace viscount {

// "1.2.3.4:80", "[::1]:80", "localhost:80" (127.0.0.1), "*:80" or ":80" (0.0.0.0). Port 0 is
// accepted and means "any free port". "unix:/abs/path" is a Unix-domain socket file.
// On failure returns nullopt and, if given, sets `error`.
std::optional<SocketAddress> parseSocketAddress(std::string_view text,
                                                std::string* error = nullptr);

// "http://host[:port][/]", also h2c:// and https://. The host is a DNS name, an IPv4 literal or a
// bracketed IPv6 literal; the port defaults to 80 (http, h2c) or 443 (https). Paths, queries,
// fragments and credentials are rejected: the proxy forwards the client's path unchanged.
// "unix:/abs/path" (HTTP/1.1) and "h2c+unix:/abs/path" (HTTP/2, prior knowledge) name a
// Unix-domain socket.
std::optional<UpstreamUrl> parseUpstreamUrl(std::string_view text, std::string* error = nullptr);

// The path of a Unix-domain socket as the kernel can take it: absolute, not empty, short enough
// for sockaddr_un. Whether its directory exists is the caller's question.
std::optional<std::string> parseUnixSocketPath(std::string_view path, std::string* error = nullptr);

}  // namespace viscount
