// upstreams[].timeouts.deadline_header: the header that carries the request's remaining budget
// upstream. It is on by default, can be renamed or turned off, and may not take a name the proxy
// or a context id already uses.

#include <gtest/gtest.h>

#include <string>

#include "config/config_loader.h"

namespace viscount {
namespace {

std::string withTimeouts(const std::string& timeouts, const std::string& context = "") {
  return R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
upstreams:
  - name: app
    url: http://127.0.0.1:8000
    timeouts:
)" + timeouts +
         context;
}

std::string header(const std::string& yaml) {
  const auto result = loadConfigString(yaml, "test.yaml");
  EXPECT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors[0].format());
  return result.ok() ? result.config->upstreams[0].timeouts.deadline_header : "<error>";
}

std::string onlyError(const std::string& yaml) {
  const auto result = loadConfigString(yaml, "test.yaml");
  EXPECT_EQ(result.errors.size(), 1u);
  return result.errors.empty() ? "" : result.errors[0].format();
}

TEST(DeadlineHeaderTest, OnByDefault) {
  EXPECT_EQ(header(withTimeouts("      connect: 1s\n")), "x-request-timeout-ms");
}

TEST(DeadlineHeaderTest, RenamedAndStoredLowercase) {
  EXPECT_EQ(header(withTimeouts("      deadline_header: X-Budget-Ms\n")), "x-budget-ms");
}

TEST(DeadlineHeaderTest, OffTurnsItOff) {
  EXPECT_EQ(header(withTimeouts("      deadline_header: \"off\"\n")), "");
  // An empty name is a mistake, not a way to say off.
  EXPECT_EQ(onlyError(withTimeouts("      deadline_header: \"\"\n")),
            "test.yaml:9:24: upstreams[0].timeouts.deadline_header: must not be empty");
}

TEST(DeadlineHeaderTest, InvalidNameIsRefusedWithItsPosition) {
  EXPECT_EQ(onlyError(withTimeouts("      deadline_header: \"x budget\"\n")),
            "test.yaml:9:24: upstreams[0].timeouts.deadline_header: invalid header name "
            "'x budget'");
}

TEST(DeadlineHeaderTest, ProxyHeadersAreRefused) {
  EXPECT_EQ(onlyError(withTimeouts("      deadline_header: Traceparent\n")),
            "test.yaml:9:24: upstreams[0].timeouts.deadline_header: 'traceparent' is used by the "
            "proxy itself");
}

TEST(DeadlineHeaderTest, AContextIdHeaderIsRefused) {
  EXPECT_EQ(onlyError(withTimeouts("      deadline_header: x-request-id\n")),
            "test.yaml:9:24: upstreams[0].timeouts.deadline_header: header 'x-request-id' "
            "already carries a context id");
  // Also when the context header is the one renamed onto the deadline header's default.
  const std::string renamed = withTimeouts("      connect: 1s\n",
                                           "context:\n  user_id:\n    header: "
                                           "x-request-timeout-ms\n");
  const auto result = loadConfigString(renamed, "test.yaml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_NE(result.errors[0].format().find("already carries a context id"), std::string::npos)
      << result.errors[0].format();
}

TEST(DeadlineHeaderTest, PrintedConfigLoadsBackTheSameValue) {
  for (const char* value : {"x-budget-ms", "\"off\""}) {
    const auto first =
        loadConfigString(withTimeouts(std::string("      deadline_header: ") + value + "\n"), "a");
    ASSERT_TRUE(first.ok());
    const auto second = loadConfigString(toYaml(*first.config), "b");
    ASSERT_TRUE(second.ok()) << toYaml(*first.config);
    EXPECT_EQ(second.config->upstreams[0].timeouts.deadline_header,
              first.config->upstreams[0].timeouts.deadline_header);
  }
}

}  // namespace
}  // namespace viscount
