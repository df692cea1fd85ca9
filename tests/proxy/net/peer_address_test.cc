// PeerAddress: the compact client address every connection keeps, and the texts made from it
// for the access log and x-forwarded-for.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include "proxy/net/socket.h"

namespace viscount {
namespace {

PeerAddress v4(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return PeerAddress(reinterpret_cast<const sockaddr*>(&a));
}

PeerAddress v6(const char* ip, uint16_t port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  inet_pton(AF_INET6, ip, &a.sin6_addr);
  return PeerAddress(reinterpret_cast<const sockaddr*>(&a));
}

std::string ip(const PeerAddress& a) {
  PeerAddress::TextBuffer buf;
  return std::string(a.ip(buf));
}

std::string text(const PeerAddress& a) {
  PeerAddress::TextBuffer buf;
  return std::string(a.text(buf));
}

TEST(PeerAddressTest, Ipv4) {
  EXPECT_EQ(ip(v4("127.0.0.1", 43216)), "127.0.0.1");
  EXPECT_EQ(text(v4("127.0.0.1", 43216)), "127.0.0.1:43216");
  EXPECT_EQ(text(v4("0.0.0.0", 0)), "0.0.0.0:0");
  EXPECT_EQ(text(v4("255.255.255.255", 65535)), "255.255.255.255:65535");
  EXPECT_EQ(text(v4("10.200.3.40", 8080)), "10.200.3.40:8080");
}

TEST(PeerAddressTest, Ipv6IsBracketedWithItsPort) {
  EXPECT_EQ(ip(v6("::1", 5678)), "::1");
  EXPECT_EQ(text(v6("::1", 5678)), "[::1]:5678");
  EXPECT_EQ(text(v6("2001:db8::17", 443)), "[2001:db8::17]:443");
  const char* longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  EXPECT_EQ(text(v6(longest, 65535)), std::string("[") + longest + "]:65535");
}

TEST(PeerAddressTest, Ipv4MappedIsShownAsIpv4) {
  EXPECT_EQ(ip(v6("::ffff:192.0.2.7", 80)), "192.0.2.7");
  EXPECT_EQ(text(v6("::ffff:192.0.2.7", 80)), "192.0.2.7:80");
}

TEST(PeerAddressTest, UnixClientsAreShownAsUnix) {
  // accept() reports a Unix client unnamed: only the family says where it came from.
  sockaddr_storage unix_peer{};
  unix_peer.ss_family = AF_UNIX;
  const PeerAddress a(reinterpret_cast<const sockaddr*>(&unix_peer));
  EXPECT_EQ(ip(a), "unix");
  EXPECT_EQ(text(a), "unix");
}

TEST(PeerAddressTest, OtherFamiliesAreUnknown) {
  sockaddr_storage netlink_peer{};
  netlink_peer.ss_family = AF_NETLINK;
  const PeerAddress a(reinterpret_cast<const sockaddr*>(&netlink_peer));
  EXPECT_EQ(ip(a), "unknown");
  EXPECT_EQ(text(a), "unknown");
  EXPECT_EQ(text(PeerAddress()), "unknown");
}

TEST(ResolvedAddressTest, UnixAddressesShowTheirPath) {
  ResolvedAddress address;
  ASSERT_TRUE(makeUnixAddress("/run/app/app.sock", &address));
  EXPECT_EQ(address.text(), "unix:/run/app/app.sock");
  EXPECT_FALSE(makeUnixAddress("/" + std::string(200, 'x'), &address));
  EXPECT_FALSE(makeUnixAddress("", &address));
}

TEST(PeerAddressTest, FormatPeerIsTheSameText) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(9000);
  inet_pton(AF_INET6, "fe80::1:2", &a.sin6_addr);
  EXPECT_EQ(formatPeer(reinterpret_cast<const sockaddr*>(&a)), "[fe80::1:2]:9000");
}

TEST(PeerAddressTest, StaysSmall) {
  // Every connection keeps one for its whole life.
  EXPECT_LE(sizeof(PeerAddress), 20u);
}

}  // namespace
}  // namespace viscount
