#pragma once

// An IPv4 or IPv6 prefix ("10.0.0.0/8", "::1/128", a bare address = full-length prefix) and the
// test "does this peer address fall inside it". Used for context.trusted_sources; a connection's
// trust is computed once at accept, so `contains` is off the per-request path.

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace viscount {

class Cidr {
 public:
  static std::optional<Cidr> parse(std::string_view text);

  // IPv4-mapped IPv6 peers (::ffff:a.b.c.d, from dual-stack sockets) match IPv4 prefixes, and an
  // IPv6 prefix sees an IPv4 peer as its mapped address, so a peer is trusted the same way
  // whichever kind of socket accepted it (and "::/0" covers IPv4 peers too).
  bool contains(const sockaddr* peer) const;
  bool contains(const sockaddr_storage& peer) const {
    return contains(reinterpret_cast<const sockaddr*>(&peer));
  }

  std::string text() const;  // canonical: "127.0.0.0/8", "::1/128"
  bool isV4() const { return v4_; }
  unsigned prefixLength() const { return prefix_; }

  friend bool operator==(const Cidr&, const Cidr&) = default;

 private:
  bool v4_ = true;
  unsigned prefix_ = 0;
  std::array<uint8_t, 16> bytes_{};  // network address; for IPv4 only the first 4 are used
};

}  // namespace viscount
