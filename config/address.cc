#include "config/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>

#include "config/duration.h"
#include "proxy/http/ascii.h"

namespace viscount {
namespace {

void setError(std::string* error, std::string message) {
  if (error != nullptr) *error = std::move(message);
}

// The canonical spelling, so "0:0::1" and "::1" compare equal when checking duplicate binds.
std::optional<std::string> canonicalIp(const std::string& text, int family) {
  unsigned char bytes[sizeof(in6_addr)] = {};
  if (inet_pton(family, text.c_str(), bytes) != 1) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, bytes, buffer, sizeof(buffer)) == nullptr) return std::nullopt;
  return std::string(buffer);
}

std::optional<uint16_t> parsePort(std::string_view text, bool allow_zero, std::string* error) {
  const auto value = parseUnsigned(text);
  if (!value || *value > 65535 || (!allow_zero && *value == 0)) {
    setError(error, "invalid port '" + std::string(text) + "' (expected " +
                        (allow_zero ? "0" : "1") + "..65535)");
    return std::nullopt;
  }
  return static_cast<uint16_t>(*value);
}

bool isHostnameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

// RFC 1123 names, leniently: underscores are allowed because some internal DNS zones use them.
bool isValidHostname(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  if (!std::all_of(host.begin(), host.end(), isHostnameChar)) return false;
  std::string_view rest = host;
  if (rest.back() == '.') rest.remove_suffix(1);  // fully qualified "svc.cluster.local."
  while (true) {
    const auto dot = rest.find('.');
    const auto label = rest.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    rest.remove_prefix(dot + 1);
  }
}

constexpr std::string_view kUnixPrefix = "unix:";
constexpr std::string_view kH2cUnixPrefix = "h2c+unix:";

}  // namespace

std::optional<std::string> parseUnixSocketPath(std::string_view path, std::string* error) {
  // sun_path holds the path and its terminating NUL; a longer one would be cut off by bind().
  constexpr size_t kMaxPath = sizeof(sockaddr_un::sun_path) - 1;
  if (path.empty()) {
    setError(error, "empty Unix socket path (expected unix:/absolute/path)");
    return std::nullopt;
  }
  if (path.front() != '/') {
    // Relative paths would depend on the working directory; "@name" (abstract) is not offered.
    setError(error,
             "the Unix socket path '" + std::string(path) + "' must be absolute (start with /)");
    return std::nullopt;
  }
  if (path.size() > kMaxPath) {
    setError(error, "the Unix socket path is " + std::to_string(path.size()) +
                        " bytes long; the system allows at most " + std::to_string(kMaxPath));
    return std::nullopt;
  }
  if (path.back() == '/') {
    setError(error, "the Unix socket path '" + std::string(path) + "' names a directory");
    return std::nullopt;
  }
  if (path.find('\0') != std::string_view::npos) {
    setError(error, "the Unix socket path contains a NUL byte");
    return std::nullopt;
  }
  return std::string(path);
}

std::optional<SocketAddress> parseSocketAddress(std::string_view text, std::string* error) {
  if (text.substr(0, kUnixPrefix.size()) == kUnixPrefix) {
    auto path = parseUnixSocketPath(text.substr(kUnixPrefix.size()), error);
    if (!path) return std::nullopt;
    SocketAddress address;
    address.unix_path = std::move(*path);
    return address;
  }
  std::string_view host;
  std::string_view port;
  bool bracketed = false;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      setError(error, "missing ']' after the IPv6 address");
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    const auto after = text.substr(close + 1);
    if (after.empty() || after.front() != ':') {
      setError(error, "missing port, e.g. [::1]:8080");
      return std::nullopt;
    }
    port = after.substr(1);
    bracketed = true;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      setError(error, "missing port (expected host:port, e.g. 127.0.0.1:8080)");
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      setError(error, "IPv6 addresses need brackets, e.g. [::1]:8080");
      return std::nullopt;
    }
  }
  SocketAddress address;
  const auto parsed_port = parsePort(port, /*allow_zero=*/true, error);
  if (!parsed_port) return std::nullopt;
  address.port = *parsed_port;

  std::optional<std::string> ip;
  if (bracketed) {
    ip = canonicalIp(std::string(host), AF_INET6);
  } else if (host.empty() || host == "*") {
    ip = "0.0.0.0";
  } else if (toLowerAscii(host) == "localhost") {
    ip = "127.0.0.1";
  } else {
    ip = canonicalIp(std::string(host), AF_INET);
  }
  if (!ip) {
    setError(error, bracketed ? "invalid IPv6 address '" + std::string(host) + "'"
                              : "invalid host '" + std::string(host) +
                                    "': expected an IPv4 address, [IPv6], localhost or * "
                                    "(bind addresses are not resolved through DNS)");
    return std::nullopt;
  }
  address.host = std::move(*ip);
  return address;
}

std::optional<UpstreamUrl> parseUpstreamUrl(std::string_view text, std::string* error) {
  for (const std::string_view prefix : {kUnixPrefix, kH2cUnixPrefix}) {
    if (text.substr(0, prefix.size()) != prefix) continue;
    auto path = parseUnixSocketPath(text.substr(prefix.size()), error);
    if (!path) return std::nullopt;
    UpstreamUrl url;
    url.scheme = prefix == kUnixPrefix ? UpstreamScheme::kHttp : UpstreamScheme::kH2c;
    url.port = 0;
    url.text = std::string(prefix) + *path;
    url.unix_path = std::move(*path);
    return url;
  }
  const auto separator = text.find("://");
  if (separator == std::string_view::npos) {
    setError(error,
             "missing scheme: expected http://, h2c://, https://, unix:/path or h2c+unix:/path, "
             "e.g. http://" +
                 std::string(text));
    return std::nullopt;
  }
  UpstreamUrl url;
  const std::string scheme = toLowerAscii(text.substr(0, separator));
  if (scheme == "http") {
    url.scheme = UpstreamScheme::kHttp;
    url.port = 80;
  } else if (scheme == "h2c") {
    url.scheme = UpstreamScheme::kH2c;
    url.port = 80;
  } else if (scheme == "https") {
    url.scheme = UpstreamScheme::kHttps;
    url.port = 443;
  } else {
    setError(
        error,
        "unsupported scheme '" + std::string(text.substr(0, separator)) +
            "' (expected http, h2c or https, or unix:/path or h2c+unix:/path for a Unix socket)");
    return std::nullopt;
  }

  std::string_view rest = text.substr(separator + 3);
  const auto authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  const std::string_view tail =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (!tail.empty() && tail != "/") {
    if (tail.front() == '?') {
      setError(error, "a query string is not allowed in an upstream URL");
    } else if (tail.front() == '#') {
      setError(error, "a fragment is not allowed in an upstream URL");
    } else {
      setError(error, "a path is not allowed in an upstream URL (got '" + std::string(tail) +
                          "'); requests keep the path the client sent");
    }
    return std::nullopt;
  }
  if (authority.find('@') != std::string_view::npos) {
    setError(error, "credentials (user@) are not allowed in an upstream URL");
    return std::nullopt;
  }

  std::string_view host;
  std::string_view port;
  bool has_port = false;
  bool ipv6 = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      setError(error, "missing ']' after the IPv6 address");
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        setError(error, "unexpected '" + std::string(after) + "' after the IPv6 address");
        return std::nullopt;
      }
      port = after.substr(1);
      has_port = true;
    }
    ipv6 = true;
  } else {
    const auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
      if (port.find(':') != std::string_view::npos) {
        setError(error, "IPv6 addresses need brackets, e.g. http://[::1]:8000");
        return std::nullopt;
      }
    }
  }
  if (host.empty()) {
    setError(error, "missing host");
    return std::nullopt;
  }
  if (has_port) {
    const auto parsed_port = parsePort(port, /*allow_zero=*/false, error);
    if (!parsed_port) return std::nullopt;
    url.port = *parsed_port;
  }

  if (ipv6) {
    const auto ip = canonicalIp(std::string(host), AF_INET6);
    if (!ip) {
      setError(error, "invalid IPv6 address '" + std::string(host) + "'");
      return std::nullopt;
    }
    url.host = *ip;
  } else if (std::all_of(host.begin(), host.end(),
                         [](char c) { return c == '.' || (c >= '0' && c <= '9'); })) {
    // All digits and dots can only be meant as IPv4; "10.0.0.256" must not fall through to DNS.
    const auto ip = canonicalIp(std::string(host), AF_INET);
    if (!ip) {
      setError(error, "invalid IPv4 address '" + std::string(host) + "'");
      return std::nullopt;
    }
    url.host = *ip;
  } else if (isValidHostname(host)) {
    url.host = toLowerAscii(host);
  } else {
    setError(error, "invalid host name '" + std::string(host) + "'");
    return std::nullopt;
  }

  url.text = scheme + "://" + (ipv6 ? "[" + url.host + "]" : url.host);
  if (has_port) url.text += ":" + std::to_string(url.port);
  return url;
}

}  // namespace viscount
