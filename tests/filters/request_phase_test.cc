// filterRequestHead: the request phase's rewrite of a client's head, on its own.

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "filters/context_filter.h"
#include "filters/id_generator.h"
#include "filters/request_phase.h"
#include "tests/filters/test_headers.h"

namespace viscount {
namespace {

using std::chrono::milliseconds;

class RequestFiltersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    filter_ = ContextFilter::create(ContextConfig{}, &error);
    ASSERT_TRUE(filter_) << error;
  }

  Duration run(test::TestRequest& r, bool trusted) {
    const RequestFilterInput input{.context = *filter_,
                                   .trusted = trusted,
                                   .client_ip = "192.0.2.7",
                                   .certificate_user = std::nullopt,
                                   .deadline_header = "x-request-timeout-ms",
                                   .budget = milliseconds(2000),
                                   .upstream_authority = "app.internal:8000"};
    return filterRequestHead(r.head, ctx_, ids_, input);
  }

  std::unique_ptr<ContextFilter> filter_;
  IdGenerator ids_;
  RequestContext ctx_;
};

TEST_F(RequestFiltersTest, TrustedClientMayOnlyLowerTheBudget) {
  test::TestRequest lower({{"X-Request-Timeout-Ms", "700"}});
  EXPECT_EQ(run(lower, true), milliseconds(700));
  EXPECT_EQ(lower.head.headers.count("x-request-timeout-ms"), 0u);

  for (const char* value : {"2000", "999999", "0", "-5", "12ms", ""}) {
    test::TestRequest ignored({{"x-request-timeout-ms", value}});
    EXPECT_EQ(run(ignored, true), milliseconds(2000)) << value;
  }
  test::TestRequest untrusted({{"x-request-timeout-ms", "700"}});
  EXPECT_EQ(run(untrusted, false), milliseconds(2000));
}

TEST_F(RequestFiltersTest, BudgetBeyondADurationIsIgnored) {
  // 2^63 ms and more used to become a negative duration: a budget already spent, so the
  // request failed at once with 504.
  for (const char* value : {"9223372036854775807", "9223372036854775808", "18446744073709551615"}) {
    test::TestRequest r({{"x-request-timeout-ms", value}});
    EXPECT_EQ(run(r, true), milliseconds(2000)) << value;
  }
}

TEST_F(RequestFiltersTest, RequestWithoutHostNamesTheUpstream) {
  test::TestRequest r;
  r.head.authority = {};
  run(r, false);
  EXPECT_EQ(r.head.authority, "app.internal:8000");
  EXPECT_EQ(r.head.headers.count("x-forwarded-for"), 1u);
  EXPECT_EQ(r.head.headers.count("x-request-id"), 1u);
}

}  // namespace
}  // namespace viscount
