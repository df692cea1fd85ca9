#include "filters/trace_context.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace viscount {
namespace {

constexpr const char* kTrace = "0af7651916cd43dd8448eb211c80319c";
constexpr const char* kParent = "b7ad6b7169203331";

std::string tp(std::string version, std::string trace = kTrace, std::string parent = kParent,
               std::string flags = "01") {
  return version + "-" + trace + "-" + parent + "-" + flags;
}

TEST(TraceContextTest, ParsesTheSpecExample) {
  auto parsed = parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->version, "00");
  EXPECT_EQ(parsed->trace_id, kTrace);
  EXPECT_EQ(parsed->parent_id, kParent);
  EXPECT_EQ(parsed->flags, "01");
}

struct Case {
  std::string value;
  const char* why;
};

// Names the case in test listings (otherwise gtest prints the object's bytes, pointers included).
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.why;
}

class ValidTraceparent : public ::testing::TestWithParam<Case> {};
class InvalidTraceparent : public ::testing::TestWithParam<Case> {};

TEST_P(ValidTraceparent, IsAccepted) {
  auto parsed = parseTraceparent(GetParam().value);
  ASSERT_TRUE(parsed) << GetParam().why;
  EXPECT_EQ(parsed->trace_id, kTrace);
  EXPECT_EQ(parsed->parent_id, kParent);
}

TEST_P(InvalidTraceparent, IsRejected) {
  EXPECT_FALSE(parseTraceparent(GetParam().value)) << GetParam().why;
}

INSTANTIATE_TEST_SUITE_P(
    W3C, ValidTraceparent,
    ::testing::Values(Case{tp("00"), "version 00"},
                      Case{tp("00", kTrace, kParent, "00"), "not sampled"},
                      Case{tp("00", kTrace, kParent, "ff"), "unknown flags are kept"},
                      Case{tp("01"), "a later version"}, Case{tp("cc"), "version cc"},
                      Case{tp("cc") + "-what-the-future-will-be-like",
                           "later version, extra fields"},
                      Case{tp("fe") + "-", "later version, empty extra field"},
                      Case{" " + tp("00"), "leading space"}, Case{tp("00") + "\t", "trailing tab"},
                      Case{"\t " + tp("00") + " \t", "both"}));

INSTANTIATE_TEST_SUITE_P(
    W3C, InvalidTraceparent,
    ::testing::Values(
        Case{"", "empty"}, Case{tp("00").substr(0, 54), "one short"},
        Case{tp("00") + "-what-the-future-will-be-like", "version 00 with extra fields"},
        Case{tp("00") + ".", "version 00 with trailing garbage"},
        Case{tp("00") + " x", "version 00, garbage after a space"},
        Case{tp("cc") + ".what-the-future-will-be-like", "later version, no dash before extra"},
        Case{tp("ff"), "version ff"}, Case{tp("FF"), "uppercase version"},
        Case{tp("0A"), "uppercase version hex"}, Case{tp(".0"), "illegal version char"},
        Case{tp("0."), "illegal version char"}, Case{tp("0g"), "non-hex version"},
        Case{"000-" + std::string(kTrace) + "-" + kParent + "-01", "version too long"},
        Case{"0-" + std::string(kTrace) + "-" + kParent + "-01", "version too short"},
        Case{tp("00", std::string(32, '0')), "all-zero trace id"},
        Case{tp("00", "0AF7651916CD43DD8448EB211C80319C"), "uppercase trace id"},
        Case{tp("00", "0af7651916cd43dd8448eb211c80319."), "illegal trace id char"},
        Case{tp("00", "0af7651916cd43dd8448eb211c80319c0"), "trace id too long"},
        Case{tp("00", "0af7651916cd43dd8448eb211c80319"), "trace id too short"},
        Case{tp("00", kTrace, std::string(16, '0')), "all-zero parent id"},
        Case{tp("00", kTrace, "B7AD6B7169203331"), "uppercase parent id"},
        Case{tp("00", kTrace, "b7ad6b716920333."), "illegal parent id char"},
        Case{tp("00", kTrace, "b7ad6b71692033310"), "parent id too long"},
        Case{tp("00", kTrace, "b7ad6b716920333"), "parent id too short"},
        Case{tp("00", kTrace, kParent, "0A"), "uppercase flags"},
        Case{tp("00", kTrace, kParent, ".0"), "illegal flags char"},
        Case{tp("00", kTrace, kParent, "0."), "illegal flags char"},
        Case{tp("00", kTrace, kParent, "001"), "flags too long"},
        Case{tp("00", kTrace, kParent, "1"), "flags too short"},
        Case{"00_" + std::string(kTrace) + "-" + kParent + "-01", "wrong separator"},
        Case{"00-" + std::string(kTrace) + "_" + kParent + "-01", "wrong separator"},
        Case{"00-" + std::string(kTrace) + "-" + kParent + "_01", "wrong separator"},
        Case{std::string(tp("00")).replace(10, 1, "\n"), "newline inside"},
        Case{std::string(tp("00")).replace(10, 1, std::string(1, '\0')), "NUL inside"},
        Case{tp("00") + "\r\n", "CRLF after"}, Case{std::string(10 * 1024, '0'), "10 KiB"}));

TEST(TraceContextTest, FormatsVersion00) {
  EXPECT_EQ(formatTraceparent(kTrace, "00f067aa0ba902b7", "01"),
            "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01");
  char out[kTraceparentSize];
  formatTraceparent(kTrace, kParent, "00", out);
  EXPECT_EQ(std::string_view(out, sizeof out), tp("00", kTrace, kParent, "00"));
}

TEST(TraceContextTest, FormattedValueParsesBack) {
  std::string value = formatTraceparent(kTrace, kParent, "03");
  auto parsed = parseTraceparent(value);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->trace_id, kTrace);
  EXPECT_EQ(parsed->parent_id, kParent);
  EXPECT_EQ(parsed->flags, "03");
}

// ---- tracestate ------------------------------------------------------------------------------

TEST(TracestateTest, ValidListsAreSentAsTheyCame) {
  for (const std::string& value : std::vector<std::string>{
           "congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "a=1 , b=2,,c=3",
           "tenant1@sys=x", "k_-*/9=v v", std::string(256, 'k') + "=v"}) {
    std::string shortened = "stale";
    EXPECT_TRUE(checkTracestate(value, &shortened)) << value;
    EXPECT_EQ(shortened, "") << value;
  }
}

TEST(TracestateTest, InvalidListsAreDropped) {
  std::string many;
  for (int i = 0; i < 33; ++i)
    many += (i ? ",k" : "k") + std::to_string(i) + "=v";
  for (const std::string& value : std::vector<std::string>{
           "novalue", "=v", "Upper=v", "1digit=v", "k=", "k=a=b", "k=\x01", "k=caf\xc3\xa9",
           "a=1,a=2", "@sys=v", "t@=v", "t@Sys=v", "t@abcdefghijklmno=v",
           std::string(257, 'k') + "=v", "k=" + std::string(257, 'v'), many}) {
    std::string shortened;
    EXPECT_FALSE(checkTracestate(value, &shortened)) << value;
  }
}

TEST(TracestateTest, OverlongListsAreShortenedLongMembersFirst) {
  // A 204-character member and 20 of 29 characters: 804 characters in all.
  std::string value;
  std::vector<std::string> members;
  for (int i = 0; i < 20; ++i) {
    std::string key = "k" + std::to_string(i);
    members.push_back(key + "=" + std::string(29 - key.size(), 'v'));
    value += (i ? "," : "") + members.back();
  }
  value = "big=" + std::string(200, 'b') + "," + value;
  std::string shortened;
  ASSERT_TRUE(checkTracestate(value, &shortened));
  EXPECT_LE(shortened.size(), kMaxTracestateSize);
  EXPECT_EQ(shortened.find("big="), std::string::npos) << "the long member goes first";
  EXPECT_EQ(shortened.rfind(members[0], 0), 0u) << "the first members are kept";
  EXPECT_EQ(shortened.find(members[19]), std::string::npos) << "the last ones go";

  // Whitespace alone can make a valid list too long: it is sent without it.
  const std::string spaced = "a=1," + std::string(600, ' ') + "b=2";
  ASSERT_TRUE(checkTracestate(spaced, &shortened));
  EXPECT_EQ(shortened, "a=1,b=2");
}

}  // namespace
}  // namespace viscount
