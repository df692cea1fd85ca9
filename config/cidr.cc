#include "config/cidr.h"

#include <arpa/inet.h>

#include <cstring>

namespace viscount {
namespace {

// ::ffff:0:0/96, the prefix under which dual-stack sockets report IPv4 peers.
constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::optional<unsigned> parsePrefixLength(std::string_view text, unsigned max) {
  // At most three digits keeps "/0032"-style oddities and overflow out without extra checks.
  if (text.empty() || text.size() > 3) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  if (value > max) return std::nullopt;
  return value;
}

bool prefixMatches(const uint8_t* network, const uint8_t* address, unsigned prefix) {
  const unsigned whole_bytes = prefix / 8;
  if (std::memcmp(network, address, whole_bytes) != 0) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (network[whole_bytes] & mask) == (address[whole_bytes] & mask);
}

}  // namespace

std::optional<Cidr> Cidr::parse(std::string_view text) {
  const auto slash = text.find('/');
  const std::string address(text.substr(0, slash));
  Cidr cidr;
  cidr.v4_ = address.find(':') == std::string::npos;
  const int family = cidr.v4_ ? AF_INET : AF_INET6;
  // inet_pton accepts only the strict dotted-quad and RFC 4291 forms, no zone ids, no octal.
  if (address.empty() || inet_pton(family, address.c_str(), cidr.bytes_.data()) != 1) {
    return std::nullopt;
  }
  const unsigned max_prefix = cidr.v4_ ? 32 : 128;
  if (slash == std::string_view::npos) {
    cidr.prefix_ = max_prefix;
  } else {
    const auto prefix = parsePrefixLength(text.substr(slash + 1), max_prefix);
    if (!prefix) return std::nullopt;
    cidr.prefix_ = *prefix;
  }
  // Host bits are tolerated ("10.1.2.3/8" is a common way to write 10.0.0.0/8) but cleared, so
  // text() and equality only ever see the network address.
  for (unsigned bit = cidr.prefix_; bit < max_prefix; ++bit) {
    cidr.bytes_[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  return cidr;
}

bool Cidr::contains(const sockaddr* peer) const {
  if (peer == nullptr) return false;
  if (peer->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(peer);
    const auto* address = reinterpret_cast<const uint8_t*>(&in->sin_addr);
    if (v4_) return prefixMatches(bytes_.data(), address, prefix_);
    // An IPv6 prefix covers an IPv4 peer only through the mapped range, the same address the
    // peer would have had on a dual-stack socket.
    std::array<uint8_t, 16> mapped{};
    std::memcpy(mapped.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
    std::memcpy(mapped.data() + 12, address, 4);
    return prefixMatches(bytes_.data(), mapped.data(), prefix_);
  }
  if (peer->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(peer);
    const auto* address = reinterpret_cast<const uint8_t*>(&in6->sin6_addr);
    if (!v4_) return prefixMatches(bytes_.data(), address, prefix_);
    const bool mapped = std::memcmp(address, kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0;
    return mapped && prefixMatches(bytes_.data(), address + 12, prefix_);
  }
  return false;
}

std::string Cidr::text() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(v4_ ? AF_INET : AF_INET6, bytes_.data(), buffer, sizeof(buffer));
  return std::string(buffer) + "/" + std::to_string(prefix_);
}

}  // namespace viscount
