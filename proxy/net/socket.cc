#include "proxy/net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>

namespace viscount {

std::string ResolvedAddress::text() const {
  if (addr.ss_family == AF_UNIX) {
    return std::string("unix:") + reinterpret_cast<const sockaddr_un*>(&addr)->sun_path;
  }
  return formatPeer(reinterpret_cast<const sockaddr*>(&addr));
}

bool makeUnixAddress(const std::string& path, ResolvedAddress* out) {
  *out = ResolvedAddress{};
  auto* un = reinterpret_cast<sockaddr_un*>(&out->addr);
  if (path.empty() || path.size() >= sizeof(un->sun_path)) return false;
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  out->len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

bool makeSocketAddress(const std::string& host, uint16_t port, ResolvedAddress* out) {
  *out = ResolvedAddress{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out->len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->addr);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out->len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

std::vector<ResolvedAddress> resolveHost(const std::string& host, uint16_t port,
                                         std::string* error) {
  std::vector<ResolvedAddress> result;
  ResolvedAddress literal;
  if (makeSocketAddress(host, port, &literal)) {
    result.push_back(literal);
    return result;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    if (error) *error = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
    return result;
  }
  for (addrinfo* ai = list; ai; ai = ai->ai_next) {
    ResolvedAddress a;
    std::memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
    a.len = ai->ai_addrlen;
    result.push_back(a);
  }
  freeaddrinfo(list);
  return result;
}

int openListener(const ResolvedAddress& address, bool reuse_port, int backlog, std::string* error) {
  int fd = socket(address.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (error) *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (address.addr.ss_family == AF_INET6) {
    // "[::]:port" means IPv6 and IPv4, as most users expect from a wildcard.
    int zero = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  }
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address.addr), address.len) != 0) {
    if (error) *error = "bind " + address.text() + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  if (listen(fd, backlog) != 0) {
    if (error) *error = "listen " + address.text() + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

namespace {

// Whether a process still accepts on the socket file at `address`: a killed one leaves the file
// behind, and connecting to it is then refused.
bool unixSocketInUse(const ResolvedAddress& address) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool refused =
      connect(fd, reinterpret_cast<const sockaddr*>(&address.addr), address.len) != 0 &&
      (errno == ECONNREFUSED || errno == ENOENT);
  close(fd);
  return !refused;  // connected, or a full backlog (EAGAIN): someone is there
}

}  // namespace

int openUnixListener(const std::string& path, uint32_t mode, int backlog, UnixSocketFile* file,
                     std::string* error) {
  ResolvedAddress address;
  if (!makeUnixAddress(path, &address)) {
    if (error) *error = "unix:" + path + ": path too long for a Unix socket";
    return -1;
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      if (error) {
        *error = "unix:" + path + ": the path exists and is not a socket; not replacing it";
      }
      return -1;
    }
    if (unixSocketInUse(address)) {
      if (error) *error = "unix:" + path + ": another process is listening on this socket";
      return -1;
    }
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      if (error) *error = "unix:" + path + ": cannot remove the stale socket: " + strerror(errno);
      return -1;
    }
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (error) *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  const auto fail = [&](const char* what) {
    if (error) *error = std::string(what) + " unix:" + path + ": " + std::strerror(errno);
    close(fd);
    return -1;
  };
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address.addr), address.len) != 0) {
    return fail("bind");
  }
  // Before listen(): until then a connect is refused, so no client gets in under the umask's mode.
  if (chmod(path.c_str(), static_cast<mode_t>(mode)) != 0 || lstat(path.c_str(), &st) != 0) {
    const int saved = errno;
    unlink(path.c_str());
    errno = saved;
    return fail("chmod");
  }
  if (listen(fd, backlog) != 0) {
    const int saved = errno;
    unlink(path.c_str());
    errno = saved;
    return fail("listen");
  }
  *file = UnixSocketFile{path, st.st_dev, st.st_ino};
  return fd;
}

void removeUnixSocketFile(const UnixSocketFile& file) {
  struct stat st {};
  if (file.path.empty() || lstat(file.path.c_str(), &st) != 0) return;
  if (S_ISSOCK(st.st_mode) && st.st_dev == file.device && st.st_ino == file.inode) {
    unlink(file.path.c_str());
  }
}

uint16_t boundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

int startConnect(const ResolvedAddress& address) {
  int fd = socket(address.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (address.addr.ss_family != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  // A Unix-domain connect completes at once or fails; EAGAIN there means the listener's backlog
  // is full, a failure like a refusal, not a connect in progress.
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address.addr), address.len) != 0 &&
      errno != EINPROGRESS) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

int connectResult(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

PeerAddress::PeerAddress(const sockaddr* addr) {
  if (addr->sa_family == AF_UNIX) {
    family_ = AF_UNIX;
  } else if (addr->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    family_ = AF_INET;
    std::memcpy(bytes_, &v4->sin_addr, 4);
    port_ = ntohs(v4->sin_port);
  } else if (addr->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
    port_ = ntohs(v6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      family_ = AF_INET;
      std::memcpy(bytes_, &v6->sin6_addr.s6_addr[12], 4);
    } else {
      family_ = AF_INET6;
      std::memcpy(bytes_, &v6->sin6_addr, 16);
    }
  }
}

size_t PeerAddress::writeIp(char* out) const {
  if (family_ == AF_INET) {
    // Every request formats it: plain digits, not inet_ntop's printf.
    char* p = out;
    for (int i = 0; i < 4; ++i) {
      if (i > 0) *p++ = '.';
      p = std::to_chars(p, p + 3, static_cast<unsigned>(bytes_[i])).ptr;
    }
    return static_cast<size_t>(p - out);
  }
  char buf[INET6_ADDRSTRLEN] = {0};
  inet_ntop(AF_INET6, bytes_, buf, sizeof(buf));
  const size_t n = std::strlen(buf);
  std::memcpy(out, buf, n);
  return n;
}

std::string_view PeerAddress::ip(TextBuffer& buf) const {
  if (family_ == 0) return "unknown";
  if (family_ == AF_UNIX) return "unix";
  return {buf, writeIp(buf)};
}

std::string_view PeerAddress::text(TextBuffer& buf) const {
  if (family_ == 0) return "unknown";
  if (family_ == AF_UNIX) return "unix";
  char* p = buf;
  if (family_ == AF_INET6) *p++ = '[';
  p += writeIp(p);
  if (family_ == AF_INET6) *p++ = ']';
  *p++ = ':';
  p = std::to_chars(p, buf + kMaxText, port_).ptr;
  return {buf, static_cast<size_t>(p - buf)};
}

std::string formatPeer(const sockaddr* addr) {
  PeerAddress::TextBuffer buf;
  return std::string(PeerAddress(addr).text(buf));
}

}  // namespace viscount
