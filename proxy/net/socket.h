#pragma once

// Thin, non-blocking socket helpers: listening sockets (SO_REUSEPORT, one per worker), outbound
// connects, and peer address formatting. No DNS here: names are resolved on the main thread.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace viscount {

struct ResolvedAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text() const;
};

// Parses a numeric host (IPv4 or IPv6 without brackets) and port.
bool makeSocketAddress(const std::string& host, uint16_t port, ResolvedAddress* out);

// Resolves a host name or literal; blocking, so main thread only.
std::vector<ResolvedAddress> resolveHost(const std::string& host, uint16_t port,
                                         std::string* error);

// Binds and listens; `reuse_port` lets every worker bind the same address. Returns -1 with
// `error` set on failure.
int openListener(const ResolvedAddress& address, bool reuse_port, int backlog, std::string* error);
uint16_t boundPort(int fd);

// Starts a non-blocking connect. Returns the fd (connect may be in progress), or -1 with errno.
int startConnect(const ResolvedAddress& address);
// After a non-blocking connect reports writable: 0 when connected, else the errno.
int connectResult(int fd);

// A peer's address as a connection keeps it for its whole life: 20 bytes, no heap; the text is
// written when a request needs it. An IPv4-mapped IPv6 address is kept, and shown, as IPv4.
class PeerAddress {
 public:
  // Room for the longest text, "[" IPv6 "]:" port.
  static constexpr size_t kMaxText = 64;
  using TextBuffer = char[kMaxText];

  PeerAddress() = default;
  explicit PeerAddress(const sockaddr* addr);

  // "1.2.3.4", "::1"; "unknown" for another family. The view may point into `buf`.
  std::string_view ip(TextBuffer& buf) const;
  // "1.2.3.4:5678", "[::1]:5678"; "unknown" for another family.
  std::string_view text(TextBuffer& buf) const;

 private:
  size_t writeIp(char* out) const;  // at most INET6_ADDRSTRLEN bytes, no terminator

  uint8_t bytes_[16] = {};  // an IPv4 address in the first four
  uint16_t port_ = 0;       // host order
  uint8_t family_ = 0;      // AF_INET, AF_INET6, or 0 for another family
};

std::string formatPeer(const sockaddr* addr);  // PeerAddress(addr).text()

}  // namespace viscount
