#include "filters/forwarded_headers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/filters/test_headers.h"

namespace viscount {
namespace {

using test::liveNames;
using test::TestRequest;
using test::valuesOf;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Every header that claims the client's address, scheme, host, port or prefix, besides
// x-forwarded-for and x-forwarded-proto.
const std::vector<std::string> kClaims = {
    "x-real-ip",          "forwarded",          "x-forwarded-host",         "x-forwarded-port",
    "x-forwarded-prefix", "x-forwarded-server", "x-original-forwarded-for", "x-client-ip",
    "true-client-ip",     "cf-connecting-ip",   "x-cluster-client-ip",      "fastly-client-ip",
};

std::string underscored(std::string name) {
  for (char& c : name)
    c = c == '-' ? '_' : static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  return name;
}

constexpr ContextConfig::Forwarded kBoth{true, true};

TEST(ClientIdentityTest, TableNamesEveryClaim) {
  for (const auto& name : kClaims) {
    EXPECT_TRUE(isClientIdentityHeader(name)) << name;
  }
  EXPECT_TRUE(isClientIdentityHeader("X-Forwarded-For"));
  EXPECT_FALSE(isClientIdentityHeader("x-forwarded"));
  EXPECT_FALSE(isClientIdentityHeader("x_real_ip"));
}

TEST(ClientIdentityTest, UntrustedClaimsAndLookalikesAreRemoved) {
  TestRequest r;
  for (const auto& name : kClaims) {
    r.add(name, "10.1.2.3");
    r.add(underscored(name), "10.1.2.3");
  }
  r.add("accept", "*/*");
  setForwardedHeaders(r.head, "192.0.2.7", false);
  EXPECT_THAT(liveNames(r.head.headers),
              ElementsAre("accept", "x-forwarded-for", "x-forwarded-proto"));
}

TEST(ClientIdentityTest, UntrustedCallerGetsOursExactlyOnce) {
  TestRequest r({{"X-Real-IP", "10.1.2.3"},
                 {"x-real-ip", "10.1.2.4"},
                 {"Forwarded", "for=10.1.2.3;proto=https"},
                 {"forwarded", "for=evil"}});
  setForwardedHeaders(r.head, "192.0.2.7", false, kBoth);
  EXPECT_THAT(valuesOf(r.head.headers, "x-real-ip"), ElementsAre("192.0.2.7"));
  EXPECT_THAT(valuesOf(r.head.headers, "forwarded"), ElementsAre("for=192.0.2.7;proto=http"));
  EXPECT_THAT(valuesOf(r.head.headers, "x-forwarded-for"), ElementsAre("192.0.2.7"));
}

TEST(ClientIdentityTest, TrustedClaimsPass) {
  TestRequest r;
  for (const auto& name : kClaims)
    r.add(name, "v-" + name);
  setForwardedHeaders(r.head, "127.0.0.1", true);
  for (const auto& name : kClaims) {
    EXPECT_THAT(valuesOf(r.head.headers, name), ElementsAre("v-" + name)) << name;
  }
}

TEST(ClientIdentityTest, TrustedListsGetOurHopAppended) {
  TestRequest r({{"forwarded", "for=10.1.2.3;proto=https"},
                 {"Forwarded", " for=10.0.0.9 "},
                 {"x-real-ip", "10.1.2.3"}},
                "https");
  setForwardedHeaders(r.head, "::1", true, kBoth);
  EXPECT_THAT(valuesOf(r.head.headers, "forwarded"),
              ElementsAre("for=10.1.2.3;proto=https, for=10.0.0.9, for=\"[::1]\";proto=https"));
  EXPECT_THAT(valuesOf(r.head.headers, "x-real-ip"), ElementsAre("10.1.2.3"));
}

TEST(ClientIdentityTest, TrustedRealIpThatDisagreesIsReplaced) {
  TestRequest r({{"x-real-ip", "10.1.2.3"}, {"x-real-ip", "10.1.2.4"}});
  setForwardedHeaders(r.head, "127.0.0.1", true, kBoth);
  EXPECT_THAT(valuesOf(r.head.headers, "x-real-ip"), ElementsAre("127.0.0.1"));
}

TEST(ClientIdentityTest, TrustedLookalikesAreNeverBelieved) {
  TestRequest r({{"X_Real_IP", "1.1.1.1"}, {"X_Forwarded_Host", "evil.example"}});
  setForwardedHeaders(r.head, "127.0.0.1", true);
  EXPECT_THAT(liveNames(r.head.headers), ElementsAre("x-forwarded-for", "x-forwarded-proto"));
}

TEST(ClientIdentityTest, NothingOptionalWithoutTheOption) {
  TestRequest r;
  setForwardedHeaders(r.head, "192.0.2.7", false);
  EXPECT_THAT(valuesOf(r.head.headers, "x-real-ip"), IsEmpty());
  EXPECT_THAT(valuesOf(r.head.headers, "forwarded"), IsEmpty());
}

}  // namespace
}  // namespace viscount
