#pragma once

// Assertions on what the contract promises for every error the proxy makes itself, and small
// look-ups over captured access-log lines, shared by the failure, pool and drain tests.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/http_client.h"

namespace viscount::test {

// An error made by the proxy: the status, `content-type: application/json`, a body
// {"error": code, "status": N, "request_id": id} whose id is the one echoed in the headers, a
// proxy-status header, and retry-after on a 503.
inline void expectProxyError(const HttpResponse& r, int status, const std::string& error) {
  SCOPED_TRACE("response body: " + r.body);
  EXPECT_EQ(r.status, status);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_FALSE(r.header("proxy-status").empty());
  const nlohmann::json body = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(body.is_object()) << "the error body is not a JSON object";
  EXPECT_EQ(body.value("error", ""), error);
  EXPECT_EQ(body.value("status", 0), status);
  EXPECT_FALSE(r.header("x-request-id").empty());
  EXPECT_EQ(body.value("request_id", ""), r.header("x-request-id"));
  if (status == 503) {
    EXPECT_FALSE(r.header("retry-after").empty()) << "a 503 says when to retry";
  }
}

// The access-log lines carrying `request_id`.
inline std::vector<nlohmann::json> linesFor(const std::vector<nlohmann::json>& lines,
                                            const std::string& request_id) {
  std::vector<nlohmann::json> out;
  for (const auto& l : lines) {
    if (l.value("request_id", "") == request_id) out.push_back(l);
  }
  return out;
}

}  // namespace viscount::test
