#pragma once

// Thin, non-blocking socket helpers: listening sockets (SO_REUSEPORT, one per worker; one Unix
// socket file shared by the workers), outbound connects, and peer address formatting. No DNS here:
// names are resolved on the main thread.

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

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

// A Unix-domain socket address; false when the path does not fit sockaddr_un.
bool makeUnixAddress(const std::string& path, ResolvedAddress* out);

// Resolves a host name or literal; blocking, so main thread only.
std::vector<ResolvedAddress> resolveHost(const std::string& host, uint16_t port,
                                         std::string* error);

// Binds and listens; `reuse_port` lets every worker bind the same address. Returns -1 with
// `error` set on failure.
int openListener(const ResolvedAddress& address, bool reuse_port, int backlog, std::string* error);
uint16_t boundPort(int fd);

// The socket file a Unix listener created, identified by inode so that only that very file is
// removed at exit (not one another process bound at the same path since).
struct UnixSocketFile {
  std::string path;
  dev_t device = 0;
  ino_t inode = 0;
};

// Binds and listens on a Unix-domain socket with file mode `mode`. A socket file nobody listens
// on (left by a killed process) is replaced; a live one, or any other kind of file, is refused
// and left alone. Returns -1 with `error` set on failure.
int openUnixListener(const std::string& path, uint32_t mode, int backlog, UnixSocketFile* file,
                     std::string* error);
// Unlinks the file if it is still the one `file` describes; safe to call twice.
void removeUnixSocketFile(const UnixSocketFile& file);

// Starts a non-blocking connect. Returns the fd (connect may be in progress), or -1 with errno.
int startConnect(const ResolvedAddress& address);
// After a non-blocking connect reports writable: 0 when connected, else the errno.
int connectResult(int fd);

// A peer's address as a connection keeps it for its whole life: 20 bytes, no heap; the text is
// written when a request needs it. An IPv4-mapped IPv6 address is kept, and shown, as IPv4. A
// client of a Unix-socket listener has no address of its own (the kernel reports it unnamed), so
// it is shown as "unix".
class PeerAddress {
 public:
  // Room for the longest text, "[" IPv6 "]:" port.
  static constexpr size_t kMaxText = 64;
  using TextBuffer = char[kMaxText];

  PeerAddress() = default;
  explicit PeerAddress(const sockaddr* addr);

  // "1.2.3.4", "::1", "unix"; "unknown" for another family. The view may point into `buf`.
  std::string_view ip(TextBuffer& buf) const;
  // "1.2.3.4:5678", "[::1]:5678", "unix"; "unknown" for another family.
  std::string_view text(TextBuffer& buf) const;

 private:
  size_t writeIp(char* out) const;  // at most INET6_ADDRSTRLEN bytes, no terminator

  uint8_t bytes_[16] = {};  // an IPv4 address in the first four
  uint16_t port_ = 0;       // host order
  uint8_t family_ = 0;      // AF_INET, AF_INET6, AF_UNIX, or 0 for another family
};

std::string formatPeer(const sockaddr* addr);  // PeerAddress(addr).text()

}  // namespace viscount
