#include "telemetry/query_redaction.h"

#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace viscount {
namespace {

// The logged copy of `target` under the default list, or the target itself when nothing changed.
std::string logged(std::string_view target,
                   std::vector<std::string> names = LoggingConfig{}.redact_query) {
  const QueryRedaction redaction(std::move(names));
  std::string out = "untouched";
  if (!redaction.redact(target, out)) {
    EXPECT_EQ(out, "untouched") << "a target with nothing to redact must leave the scratch alone";
    return std::string(target);
  }
  return out;
}

TEST(QueryRedaction, ReplacesListedValuesAndKeepsEverythingElse) {
  EXPECT_EQ(logged("/login?token=abc&x=1"), "/login?token=REDACTED&x=1");
  EXPECT_EQ(logged("/a?x=1&api_key=s3cr3t"), "/a?x=1&api_key=REDACTED");
  EXPECT_EQ(logged("/a?password=p&sig=zz&page=2"), "/a?password=REDACTED&sig=REDACTED&page=2");
}

TEST(QueryRedaction, TargetsWithoutListedValuesAreNotCopied) {
  EXPECT_EQ(logged("/plain"), "/plain");
  EXPECT_EQ(logged("/a?x=1&y=2"), "/a?x=1&y=2");
  EXPECT_EQ(logged("/a?"), "/a?");
  EXPECT_EQ(logged("/a?token"), "/a?token");    // a name with no '=' carries no value
  EXPECT_EQ(logged("/a?token="), "/a?token=");  // nor an empty one
  EXPECT_EQ(logged("/a?tokens=1&mytoken=2"), "/a?tokens=1&mytoken=2");
}

TEST(QueryRedaction, NamesMatchAsFrameworksDecodeThem) {
  EXPECT_EQ(logged("/a?%74oken=abc"), "/a?%74oken=REDACTED");
  EXPECT_EQ(logged("/a?%54OKEN=abc"), "/a?%54OKEN=REDACTED");
  EXPECT_EQ(logged("/a?Token=abc"), "/a?Token=REDACTED");
  EXPECT_EQ(logged("/a?API_KEY=abc"), "/a?API_KEY=REDACTED");
  EXPECT_EQ(logged("/a?access%5Ftoken=abc"), "/a?access%5Ftoken=REDACTED");
  // '+' is a space in a query: "api key" is not "api_key".
  EXPECT_EQ(logged("/a?api+key=abc"), "/a?api+key=abc");
  EXPECT_EQ(logged("/a?api+key=abc", {"api key"}), "/a?api+key=REDACTED");
}

TEST(QueryRedaction, RepeatedNamesAndOddShapesNeverLeakAValue) {
  EXPECT_EQ(logged("/a?token=1&token=2&token=3"),
            "/a?token=REDACTED&token=REDACTED&token=REDACTED");
  EXPECT_EQ(logged("/a?x&token=abc&&y"), "/a?x&token=REDACTED&&y");
  EXPECT_EQ(logged("/a?x=1;token=abc;y=2"), "/a?x=1;token=REDACTED;y=2");
  EXPECT_EQ(logged("/a?token=a=b=c&x=1"), "/a?token=REDACTED&x=1");
  EXPECT_EQ(logged("/a?token=abc#frag"), "/a?token=REDACTED");
  // A broken escape is kept as written and matches nothing.
  EXPECT_EQ(logged("/a?%7token=abc"), "/a?%7token=abc");
  EXPECT_EQ(logged("/a?tok%en=abc"), "/a?tok%en=abc");
  // Only the query is looked at: a path segment that looks like a parameter is a path.
  EXPECT_EQ(logged("/token=abc/x?y=1"), "/token=abc/x?y=1");
}

TEST(QueryRedaction, AnEmptyListTurnsItOff) {
  EXPECT_EQ(logged("/a?token=abc", {}), "/a?token=abc");
}

TEST(QueryRedaction, VeryLongNamesAreNotMatchedButDoNotOverflow) {
  const std::string name(1000, 'a');
  EXPECT_EQ(logged("/a?" + name + "=1&code=2"), "/a?" + name + "=1&code=REDACTED");
}

}  // namespace
}  // namespace viscount
