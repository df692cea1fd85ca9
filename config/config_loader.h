#pragma once

// YAML text -> validated, immutable Config. Loading never stops at the first problem: every error
// is collected with the file, line and column of the offending key or value, so `--validate` can
// show them all at once. A result has either a config or errors, never both.

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"

namespace viscount {

// What zero-config mode and `--print-config` fall back to.
inline constexpr std::string_view kDefaultListenAddress = "127.0.0.1:8080";
inline constexpr std::string_view kZeroConfigListenerName = "inbound";
inline constexpr std::string_view kZeroConfigUpstreamName = "app";

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the problem is not at a place in the file
  int column = 0;  // 1-based
  std::string message;

  // "FILE:LINE:COL: message"
  std::string format() const;
};

struct ConfigLoadResult {
  ConfigPtr config;
  std::vector<ConfigError> errors;  // sorted by position

  bool ok() const { return config != nullptr; }
};

// A missing or unreadable file gives one error "FILE:0:0: cannot read: <strerror>".
ConfigLoadResult loadConfigFile(const std::string& path);
// `file_name` is used in error messages and as Config::source_path.
ConfigLoadResult loadConfigString(std::string_view yaml, std::string_view file_name);

// Zero-config mode: listener "inbound" on `listen_address` (empty: 127.0.0.1:8080) fronting
// upstream "app" at `upstream_url`; every other setting at its default. Errors name the flag
// ("--upstream:0:0: ..."). `log_format` is the logs' format: the binary passes `pretty` when its
// stdout is a terminal (a developer watching) and `json` when it is not (a pipe, a collector).
ConfigLoadResult makeZeroConfig(std::string_view upstream_url, std::string_view listen_address,
                                std::string_view admin_address = {},
                                LogFormat log_format = LogFormat::kJson);

// The effective config with every default written out; valid input to loadConfigString, and
// loading it gives back an equal Config (apart from source_path).
std::string toYaml(const Config& config);
// The same tree for the admin endpoint. Durations are strings with units as in the YAML; sizes
// are plain byte counts so that tools can compare them.
nlohmann::json toJson(const Config& config);
// What the admin /config endpoint serves: toJson, indented, ending in a newline. Strings are
// bytes from the YAML and a file path need not be UTF-8: such bytes are shown as U+FFFD.
std::string toJsonText(const Config& config);

}  // namespace viscount
