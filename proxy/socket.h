#pragma once

// Thin, non-blocking socket helpers: listening sockets (SO_REUSEPORT, one per worker), outbound
// connects, and peer address formatting. No DNS here: names are resolved on the main thread.

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
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

std::string formatPeer(const sockaddr* addr);  // "1.2.3.4:5678", "[::1]:5678"
std::string formatIp(const sockaddr* addr);    // without the port; IPv4-mapped shown as IPv4
std::string formatPeer(const sockaddr* addr, const std::string& ip);  // ip: formatIp(addr)

}  // namespace viscount
