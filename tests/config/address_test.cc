#include "config/address.h"

#include <gtest/gtest.h>

#include <string>

namespace viscount {
namespace {

SocketAddress bind(std::string_view text) {
  std::string error;
  const auto address = parseSocketAddress(text, &error);
  EXPECT_TRUE(address.has_value()) << text << ": " << error;
  return address.value_or(SocketAddress{});
}

std::string bindError(std::string_view text) {
  std::string error;
  EXPECT_FALSE(parseSocketAddress(text, &error).has_value()) << text;
  EXPECT_FALSE(error.empty()) << text;
  return error;
}

UpstreamUrl url(std::string_view text) {
  std::string error;
  const auto parsed = parseUpstreamUrl(text, &error);
  EXPECT_TRUE(parsed.has_value()) << text << ": " << error;
  return parsed.value_or(UpstreamUrl{});
}

std::string urlError(std::string_view text) {
  std::string error;
  EXPECT_FALSE(parseUpstreamUrl(text, &error).has_value()) << text;
  EXPECT_FALSE(error.empty()) << text;
  return error;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(SocketAddressTest, ParsesIpv4) {
  const SocketAddress a = bind("10.1.2.3:15006");
  EXPECT_EQ(a.host, "10.1.2.3");
  EXPECT_EQ(a.port, 15006);
  EXPECT_EQ(a.text(), "10.1.2.3:15006");
}

TEST(SocketAddressTest, ParsesBracketedIpv6) {
  const SocketAddress a = bind("[::1]:8080");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 8080);
  EXPECT_EQ(a.text(), "[::1]:8080");
  EXPECT_EQ(bind("[::]:15006").text(), "[::]:15006");
  EXPECT_EQ(bind("[0:0::1]:80").host, "::1");
  EXPECT_EQ(bind("[2001:DB8::A]:80").host, "2001:db8::a");
}

TEST(SocketAddressTest, ExpandsConveniences) {
  EXPECT_EQ(bind("localhost:9000").text(), "127.0.0.1:9000");
  EXPECT_EQ(bind("LOCALHOST:9000").host, "127.0.0.1");
  EXPECT_EQ(bind("*:8080").text(), "0.0.0.0:8080");
  EXPECT_EQ(bind(":8080").text(), "0.0.0.0:8080");
}

TEST(SocketAddressTest, AllowsPortZeroAndMax) {
  EXPECT_EQ(bind("127.0.0.1:0").port, 0);
  EXPECT_EQ(bind("127.0.0.1:65535").port, 65535);
}

TEST(SocketAddressTest, RejectsBadAddresses) {
  EXPECT_TRUE(contains(bindError("127.0.0.1"), "missing port"));
  EXPECT_TRUE(contains(bindError("::1:80"), "brackets"));
  EXPECT_TRUE(contains(bindError("[::1]80"), "missing port"));
  EXPECT_TRUE(contains(bindError("[::1]"), "missing port"));
  EXPECT_TRUE(contains(bindError("[::1:80"), "']'"));
  EXPECT_TRUE(contains(bindError("[1.2.3.4]:80"), "invalid IPv6"));
  EXPECT_TRUE(contains(bindError("127.0.0.1:65536"), "invalid port"));
  EXPECT_TRUE(contains(bindError("127.0.0.1:"), "invalid port"));
  EXPECT_TRUE(contains(bindError("127.0.0.1:-1"), "invalid port"));
  EXPECT_TRUE(contains(bindError("127.0.0.1:http"), "invalid port"));
  EXPECT_TRUE(contains(bindError("example.com:80"), "not resolved"));
  EXPECT_TRUE(contains(bindError("1.2.3:80"), "invalid host"));
  EXPECT_TRUE(contains(bindError("256.1.1.1:80"), "invalid host"));
  bindError("");
  bindError(" 127.0.0.1:80");
}

TEST(UpstreamUrlTest, ParsesHttpWithPort) {
  const UpstreamUrl u = url("http://127.0.0.1:8000");
  EXPECT_EQ(u.scheme, UpstreamScheme::kHttp);
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8000);
  EXPECT_EQ(u.text, "http://127.0.0.1:8000");
}

TEST(UpstreamUrlTest, DefaultPortsPerScheme) {
  EXPECT_EQ(url("http://app").port, 80);
  EXPECT_EQ(url("h2c://app").port, 80);
  EXPECT_EQ(url("h2c://app").scheme, UpstreamScheme::kH2c);
  EXPECT_EQ(url("https://api.example.com").port, 443);
  EXPECT_EQ(url("https://api.example.com").scheme, UpstreamScheme::kHttps);
  EXPECT_EQ(url("https://api.example.com").text, "https://api.example.com");
}

TEST(UpstreamUrlTest, NormalisesText) {
  EXPECT_EQ(url("https://api.example.com:8443/").text, "https://api.example.com:8443");
  EXPECT_EQ(url("http://app/").text, "http://app");
  EXPECT_EQ(url("HTTP://App.Default.SVC.cluster.local:8080").text,
            "http://app.default.svc.cluster.local:8080");
  EXPECT_EQ(url("HTTP://App.Default.SVC.cluster.local:8080").host, "app.default.svc.cluster.local");
}

TEST(UpstreamUrlTest, ParsesBracketedIpv6) {
  const UpstreamUrl u = url("h2c://[::1]:9000/");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 9000);
  EXPECT_EQ(u.text, "h2c://[::1]:9000");
  EXPECT_EQ(url("http://[2001:DB8::1]").text, "http://[2001:db8::1]");
  EXPECT_EQ(url("http://[2001:DB8::1]").port, 80);
}

TEST(UpstreamUrlTest, AcceptsHostNames) {
  EXPECT_EQ(url("http://my-app").host, "my-app");
  EXPECT_EQ(url("http://my_app.internal:81").host, "my_app.internal");
  EXPECT_EQ(url("http://app.svc.cluster.local.:80").host, "app.svc.cluster.local.");
}

TEST(UpstreamUrlTest, RejectsMissingOrUnknownScheme) {
  EXPECT_TRUE(contains(urlError("127.0.0.1:8000"), "missing scheme"));
  EXPECT_TRUE(contains(urlError("app"), "missing scheme"));
  EXPECT_TRUE(contains(urlError("ftp://app"), "unsupported scheme 'ftp'"));
  EXPECT_TRUE(contains(urlError("ws://app"), "unsupported scheme"));
  EXPECT_TRUE(contains(urlError("://app"), "unsupported scheme"));
}

TEST(UpstreamUrlTest, RejectsPathQueryFragmentAndCredentials) {
  EXPECT_TRUE(contains(urlError("http://app/api"), "path is not allowed"));
  EXPECT_TRUE(contains(urlError("http://app/api/"), "path is not allowed"));
  EXPECT_TRUE(contains(urlError("http://app//"), "path is not allowed"));
  EXPECT_TRUE(contains(urlError("http://app?x=1"), "query"));
  EXPECT_TRUE(contains(urlError("http://app/?x=1"), "path"));
  EXPECT_TRUE(contains(urlError("http://app#top"), "fragment"));
  EXPECT_TRUE(contains(urlError("http://user:pw@app"), "credentials"));
  EXPECT_TRUE(contains(urlError("http://user@app:80"), "credentials"));
}

TEST(UpstreamUrlTest, RejectsBadHostsAndPorts) {
  EXPECT_TRUE(contains(urlError("http://"), "missing host"));
  EXPECT_TRUE(contains(urlError("http://:8000"), "missing host"));
  EXPECT_TRUE(contains(urlError("http:///"), "missing host"));
  EXPECT_TRUE(contains(urlError("http://app:0"), "invalid port"));
  EXPECT_TRUE(contains(urlError("http://app:65536"), "invalid port"));
  EXPECT_TRUE(contains(urlError("http://app:"), "invalid port"));
  EXPECT_TRUE(contains(urlError("http://app:http"), "invalid port"));
  EXPECT_TRUE(contains(urlError("http://::1:80"), "brackets"));
  EXPECT_TRUE(contains(urlError("http://[::1"), "']'"));
  EXPECT_TRUE(contains(urlError("http://[::1]x"), "after the IPv6"));
  EXPECT_TRUE(contains(urlError("http://[zz::1]:80"), "invalid IPv6"));
  EXPECT_TRUE(contains(urlError("http://10.0.0.256"), "invalid IPv4"));
  EXPECT_TRUE(contains(urlError("http://10.0.0"), "invalid IPv4"));
  EXPECT_TRUE(contains(urlError("http://-app-"), "invalid host name"));
  EXPECT_TRUE(contains(urlError("http://a..b"), "invalid host name"));
  EXPECT_TRUE(contains(urlError("http://my app"), "invalid host name"));
  EXPECT_TRUE(contains(urlError("http://" + std::string(64, 'a') + ".com"), "invalid host name"));
}

TEST(UnixSocketTest, ListenerAndUpstreamPaths) {
  const SocketAddress listener = bind("unix:/run/viscount.sock");
  EXPECT_TRUE(listener.isUnix());
  EXPECT_EQ(listener.unix_path, "/run/viscount.sock");
  EXPECT_EQ(listener.text(), "unix:/run/viscount.sock");

  const UpstreamUrl h1 = url("unix:/run/app/app.sock");
  EXPECT_EQ(h1.scheme, UpstreamScheme::kHttp);
  EXPECT_EQ(h1.unix_path, "/run/app/app.sock");
  EXPECT_EQ(h1.text, "unix:/run/app/app.sock");
  EXPECT_EQ(h1.authority(), "localhost");
  const UpstreamUrl h2 = url("h2c+unix:/run/app/app.sock");
  EXPECT_EQ(h2.scheme, UpstreamScheme::kH2c);
  EXPECT_EQ(h2.text, "h2c+unix:/run/app/app.sock");
  // The longest path sun_path holds (107 bytes and its NUL), and one byte more.
  const std::string longest = "/" + std::string(106, 'a');
  EXPECT_EQ(url("unix:" + longest).unix_path, longest);
  EXPECT_TRUE(contains(urlError("unix:" + longest + "a"), "at most 107"));
}

TEST(UnixSocketTest, RejectsPathsTheKernelCannotBind) {
  EXPECT_TRUE(contains(bindError("unix:"), "empty"));
  EXPECT_TRUE(contains(bindError("unix:run/v.sock"), "must be absolute"));
  EXPECT_TRUE(contains(bindError("unix:@abstract"), "must be absolute"));
  EXPECT_TRUE(contains(bindError("unix:/run/"), "names a directory"));
  EXPECT_TRUE(contains(bindError("unix:/" + std::string(200, 'x')), "at most 107"));
  EXPECT_TRUE(contains(urlError("unix:"), "empty"));
  EXPECT_TRUE(contains(urlError("h2c+unix:app.sock"), "must be absolute"));
  EXPECT_TRUE(contains(urlError(std::string("unix:/a\0b", 10)), "NUL"));
  EXPECT_TRUE(contains(urlError("https+unix:/run/app.sock"), "h2c+unix:/path"));
}

}  // namespace
}  // namespace viscount
