#include "config/cidr.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/un.h>

#include <cstring>

namespace viscount {
namespace {

sockaddr_storage peer(const char* address) {
  sockaddr_storage storage{};
  if (std::strchr(address, ':') != nullptr) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    EXPECT_EQ(inet_pton(AF_INET6, address, &in6->sin6_addr), 1) << address;
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    EXPECT_EQ(inet_pton(AF_INET, address, &in->sin_addr), 1) << address;
  }
  return storage;
}

Cidr cidr(const char* text) {
  const auto parsed = Cidr::parse(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(Cidr{});
}

TEST(CidrTest, ParsesIpv4Prefix) {
  const Cidr c = cidr("10.0.0.0/8");
  EXPECT_TRUE(c.isV4());
  EXPECT_EQ(c.prefixLength(), 8u);
  EXPECT_EQ(c.text(), "10.0.0.0/8");
}

TEST(CidrTest, ParsesIpv6Prefix) {
  const Cidr c = cidr("2001:DB8:0:0::/32");
  EXPECT_FALSE(c.isV4());
  EXPECT_EQ(c.prefixLength(), 32u);
  EXPECT_EQ(c.text(), "2001:db8::/32");
}

TEST(CidrTest, BareAddressIsAFullLengthPrefix) {
  EXPECT_EQ(cidr("192.168.1.7").text(), "192.168.1.7/32");
  EXPECT_EQ(cidr("::1").text(), "::1/128");
  EXPECT_EQ(cidr("::1").prefixLength(), 128u);
}

TEST(CidrTest, HostBitsAreMasked) {
  EXPECT_EQ(cidr("10.1.2.3/8").text(), "10.0.0.0/8");
  EXPECT_EQ(cidr("192.168.1.255/25").text(), "192.168.1.128/25");
  EXPECT_EQ(cidr("2001:db8::1/64").text(), "2001:db8::/64");
  EXPECT_EQ(cidr("1.2.3.4/0").text(), "0.0.0.0/0");
  EXPECT_EQ(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
  EXPECT_FALSE(cidr("10.0.0.0/8") == cidr("10.0.0.0/9"));
}

TEST(CidrTest, RejectsBadInput) {
  for (const char* bad : {"",
                          "/8",
                          "10.0.0.0/",
                          "10.0.0.0/33",
                          "10.0.0.0/-1",
                          "10.0.0.0/8/8",
                          "10.0.0.0/08",
                          "10.0.0.0/ 8",
                          "10.0.0.0/0x8",
                          "10.0.0",
                          "256.0.0.1",
                          "1.2.3.4.5",
                          "01.2.3.4",
                          " 10.0.0.0/8",
                          "10.0.0.0/8 ",
                          "abc",
                          "::/129",
                          "::1/1280",
                          "fe80::1%eth0",
                          "::g",
                          "1:2:3:4:5:6:7:8:9",
                          "localhost",
                          "10.0.0.0/1000"}) {
    EXPECT_FALSE(Cidr::parse(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(CidrTest, Ipv4ContainsAndExcludes) {
  const Cidr c = cidr("127.0.0.0/8");
  EXPECT_TRUE(c.contains(peer("127.0.0.1")));
  EXPECT_TRUE(c.contains(peer("127.255.255.255")));
  EXPECT_FALSE(c.contains(peer("128.0.0.1")));
  EXPECT_FALSE(c.contains(peer("126.255.255.255")));
}

TEST(CidrTest, PrefixNotOnAByteBoundary) {
  const Cidr c = cidr("10.0.0.0/9");
  EXPECT_TRUE(c.contains(peer("10.127.255.255")));
  EXPECT_FALSE(c.contains(peer("10.128.0.0")));
  const Cidr v6 = cidr("2001:db8:8000::/33");
  EXPECT_TRUE(v6.contains(peer("2001:db8:ffff::1")));
  EXPECT_FALSE(v6.contains(peer("2001:db8:7fff::1")));
}

TEST(CidrTest, Slash32MatchesOneAddress) {
  const Cidr c = cidr("192.168.1.7/32");
  EXPECT_TRUE(c.contains(peer("192.168.1.7")));
  EXPECT_FALSE(c.contains(peer("192.168.1.6")));
  EXPECT_FALSE(c.contains(peer("192.168.1.8")));
}

TEST(CidrTest, Slash128MatchesOneAddress) {
  const Cidr c = cidr("::1/128");
  EXPECT_TRUE(c.contains(peer("::1")));
  EXPECT_FALSE(c.contains(peer("::2")));
  EXPECT_FALSE(c.contains(peer("::")));
  EXPECT_FALSE(c.contains(peer("127.0.0.1")));
}

TEST(CidrTest, SlashZeroMatchesItsWholeFamily) {
  const Cidr any4 = cidr("0.0.0.0/0");
  EXPECT_TRUE(any4.contains(peer("1.2.3.4")));
  EXPECT_TRUE(any4.contains(peer("255.255.255.255")));
  EXPECT_TRUE(any4.contains(peer("::ffff:8.8.8.8")));
  EXPECT_FALSE(any4.contains(peer("2001:db8::1")));

  const Cidr any6 = cidr("::/0");
  EXPECT_TRUE(any6.contains(peer("2001:db8::1")));
  EXPECT_TRUE(any6.contains(peer("::1")));
  // A plain IPv4 peer is matched by IPv6 prefixes only through the mapped range.
  EXPECT_TRUE(any6.contains(peer("1.2.3.4")));
}

TEST(CidrTest, MappedIpv6PeerMatchesIpv4Prefix) {
  const Cidr c = cidr("127.0.0.0/8");
  EXPECT_TRUE(c.contains(peer("::ffff:127.0.0.1")));
  EXPECT_FALSE(c.contains(peer("::ffff:128.0.0.1")));
  // Same low 32 bits, but not mapped: an IPv4-compatible or ordinary v6 address must not match.
  EXPECT_FALSE(c.contains(peer("::127.0.0.1")));
  EXPECT_FALSE(c.contains(peer("64:ff9b::7f00:1")));
  EXPECT_FALSE(c.contains(peer("::1")));
}

TEST(CidrTest, MappedIpv6PrefixMatchesIpv4Peer) {
  const Cidr mapped = cidr("::ffff:10.0.0.0/104");
  EXPECT_TRUE(mapped.contains(peer("10.1.2.3")));
  EXPECT_TRUE(mapped.contains(peer("::ffff:10.1.2.3")));
  EXPECT_FALSE(mapped.contains(peer("11.1.2.3")));
  EXPECT_FALSE(cidr("2001:db8::/32").contains(peer("10.1.2.3")));
}

TEST(CidrTest, IgnoresUnknownFamiliesAndNull) {
  sockaddr_un unix_peer{};
  unix_peer.sun_family = AF_UNIX;
  EXPECT_FALSE(cidr("0.0.0.0/0").contains(reinterpret_cast<const sockaddr*>(&unix_peer)));
  EXPECT_FALSE(cidr("::/0").contains(reinterpret_cast<const sockaddr*>(&unix_peer)));
  EXPECT_FALSE(cidr("0.0.0.0/0").contains(static_cast<const sockaddr*>(nullptr)));
}

}  // namespace
}  // namespace viscount
