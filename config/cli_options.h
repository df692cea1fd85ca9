#pragma once

// The command line of docs/reference.md, parsed into what main() should do. Parsing is pure (the
// environment variable is passed in) so every combination can be tested without a process.

#include <optional>
#include <string>
#include <string_view>

namespace viscount {

// What `--print-config` with neither --config nor --upstream prints: the zero-config defaults for
// a service on the port most dev servers use.
inline constexpr std::string_view kPrintConfigDefaultUpstream = "http://127.0.0.1:8000";
inline constexpr std::string_view kConfigEnvironmentVariable = "VISCOUNT_CONFIG";

enum class CliMode { kRun, kValidate, kPrintConfig, kVersion, kHelp };

struct CliOptions {
  CliMode mode = CliMode::kRun;
  // Exactly one of these two is set in kRun and kPrintConfig mode; config_path in kValidate.
  std::string config_path;
  std::string upstream_url;
  std::string listen_address;  // empty: kDefaultListenAddress (only with upstream_url)
  std::string admin_address;   // empty: the default admin address; "off" disables it
};

struct CliParseResult {
  std::optional<CliOptions> options;
  std::string error;  // set when options is empty; one line, without a trailing newline
};

// `env_config` is getenv("VISCOUNT_CONFIG") or null. Flags take "--flag value" or "--flag=value".
// --help and --version win over everything else, errors included, so they always work.
CliParseResult parseCli(int argc, const char* const* argv, const char* env_config);

// The --help text: every flag, the environment variable and the exit codes.
std::string cliUsage();

}  // namespace viscount
