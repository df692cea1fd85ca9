#pragma once

// What the loader tests share: a valid config to build on and the ways to load one.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config_loader.h"

namespace viscount::testing {

// A valid config that tests append to or splice into.
inline constexpr const char* kListenerAndUpstream = R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)";

inline std::vector<ConfigError> errorsOf(const std::string& yaml) {
  const auto result = loadConfigString(yaml, "test.yaml");
  EXPECT_FALSE(result.ok()) << "expected errors for:\n" << yaml;
  EXPECT_EQ(result.config, nullptr);
  return result.errors;
}

// The single error of `yaml`, formatted.
inline std::string errorOf(const std::string& yaml) {
  const auto errors = errorsOf(yaml);
  EXPECT_EQ(errors.size(), 1u) << yaml;
  std::string all;
  for (const auto& error : errors)
    all += error.format() + "\n";
  if (errors.size() != 1) ADD_FAILURE() << all;
  return errors.empty() ? "" : errors.front().format();
}

inline ConfigPtr load(const std::string& yaml) {
  const auto result = loadConfigString(yaml, "test.yaml");
  for (const auto& error : result.errors)
    ADD_FAILURE() << error.format();
  EXPECT_TRUE(result.ok());
  return result.config;
}
}  // namespace viscount::testing
