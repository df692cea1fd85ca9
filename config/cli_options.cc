#include "config/cli_options.h"

#include <vector>

#include "config/config_loader.h"

namespace viscount {
namespace {

struct Flags {
  std::optional<std::string> config;
  std::optional<std::string> upstream;
  std::optional<std::string> listen;
  std::optional<std::string> admin;
  bool validate = false;
  bool print_config = false;
  bool version = false;
  bool help = false;
};

CliParseResult fail(std::string message) {
  return {std::nullopt, std::move(message)};
}

// Collects the flags, or the first error. --help/--version are still recorded after an error so
// the caller can let them win.
std::string readFlags(int argc, const char* const* argv, Flags& flags) {
  std::string error;
  const auto note = [&error](std::string message) {
    if (error.empty()) error = std::move(message);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') {
      note("unexpected argument '" + std::string(arg) + "'");
      continue;
    }
    const auto equals = arg.find('=');
    const std::string_view name = arg.substr(0, equals);
    const bool has_inline_value = equals != std::string_view::npos;
    const std::string_view inline_value =
        has_inline_value ? arg.substr(equals + 1) : std::string_view();

    std::optional<std::string>* slot = nullptr;
    bool* toggle = nullptr;
    if (name == "--config" || name == "-c") {
      slot = &flags.config;
    } else if (name == "--upstream") {
      slot = &flags.upstream;
    } else if (name == "--listen") {
      slot = &flags.listen;
    } else if (name == "--admin") {
      slot = &flags.admin;
    } else if (name == "--validate") {
      toggle = &flags.validate;
    } else if (name == "--print-config") {
      toggle = &flags.print_config;
    } else if (name == "--version") {
      toggle = &flags.version;
    } else if (name == "--help" || name == "-h") {
      toggle = &flags.help;
    } else {
      note("unknown option '" + std::string(name) + "'");
      continue;
    }

    if (toggle != nullptr) {
      if (has_inline_value) note(std::string(name) + " does not take a value");
      *toggle = true;
      continue;
    }
    std::string value;
    if (has_inline_value) {
      value = std::string(inline_value);
    } else if (i + 1 < argc && std::string_view(argv[i + 1]).substr(0, 2) != "--") {
      // A following "--flag" is taken as a forgotten value, not as the value itself;
      // "--config=--odd-name" still works.
      value = argv[++i];
    } else {
      note(std::string(name) + " needs a value");
      continue;
    }
    if (value.empty()) {
      note(std::string(name) + " needs a non-empty value");
      continue;
    }
    if (slot->has_value()) {
      note(std::string(name) + " given more than once");
      continue;
    }
    *slot = std::move(value);
  }
  return error;
}

}  // namespace

CliParseResult parseCli(int argc, const char* const* argv, const char* env_config) {
  Flags flags;
  const std::string error = readFlags(argc, argv, flags);
  CliOptions options;
  if (flags.help) {
    options.mode = CliMode::kHelp;
    return {options, ""};
  }
  if (flags.version) {
    options.mode = CliMode::kVersion;
    return {options, ""};
  }
  if (!error.empty()) return fail(error + " (see --help)");

  if (flags.validate && flags.print_config) {
    return fail("--validate and --print-config cannot be combined");
  }
  if (flags.config && flags.upstream) {
    return fail(
        "--upstream cannot be combined with --config: a config file defines its own "
        "upstreams");
  }
  if (flags.admin && !flags.upstream) {
    return fail("--admin only applies with --upstream; a config file sets admin.address");
  }
  if (flags.listen && !flags.upstream) {
    return fail("--listen only applies with --upstream; a config file defines its own listeners");
  }
  // The environment is a default for --config: an explicit --upstream on the command line means
  // zero-config mode even where VISCOUNT_CONFIG is set.
  if (!flags.config && !flags.upstream && env_config != nullptr && *env_config != '\0') {
    flags.config = env_config;
  }

  options.config_path = flags.config.value_or("");
  options.upstream_url = flags.upstream.value_or("");
  options.listen_address = flags.listen.value_or("");
  options.admin_address = flags.admin.value_or("");
  if (flags.validate) {
    if (!flags.config) {
      return fail("--validate checks a config file: pass --config FILE or set " +
                  std::string(kConfigEnvironmentVariable));
    }
    options.mode = CliMode::kValidate;
    return {options, ""};
  }
  if (flags.print_config) {
    options.mode = CliMode::kPrintConfig;
    if (!flags.config && !flags.upstream) {
      options.upstream_url = std::string(kPrintConfigDefaultUpstream);
    }
    return {options, ""};
  }
  if (!flags.config && !flags.upstream) {
    return fail("nothing to run: pass --config FILE (or set " +
                std::string(kConfigEnvironmentVariable) +
                "), or --upstream URL to front a local service, e.g. --upstream "
                "http://127.0.0.1:8000");
  }
  options.mode = CliMode::kRun;
  return {options, ""};
}

std::string cliUsage() {
  std::string usage = R"(Usage:
  viscount --config FILE                      run with a YAML config
  viscount --upstream URL [--listen ADDR] [--admin ADDR|off]
                                              zero-config mode: front one local service
  viscount --validate --config FILE           check a config and exit
  viscount --print-config [--config FILE | --upstream URL [--listen ADDR]]
  viscount --version | --help

Options (each takes "--option VALUE" or "--option=VALUE"):
  -c, --config FILE    YAML config file. Defaults to $VISCOUNT_CONFIG.
      --upstream URL   Zero-config mode: proxy to URL (http://, h2c:// or https://, host and
                       optional port, no path; or unix:/path, h2c+unix:/path for a Unix
                       socket), e.g. http://127.0.0.1:8000. Every other setting
                       takes its default. Cannot be combined with --config; when given, it takes
                       precedence over $VISCOUNT_CONFIG.
      --listen ADDR    Zero-config mode: address to listen on, host:port, [v6]:port or
                       unix:/path (default DEFAULT_LISTEN).
      --admin ADDR     Zero-config mode: admin endpoints address, or "off"
                       (default 127.0.0.1:15000).
      --validate       Load and check the config, print FILE:LINE:COL: message for every
                       problem on stderr, and exit: 0 when valid, 1 when not.
      --print-config   Print the effective config as YAML, with every default filled in.
                       With neither --config nor --upstream, prints the zero-config defaults
                       for --upstream DEFAULT_UPSTREAM.
      --version        Print the version and exit.
  -h, --help           Print this help and exit.

Environment:
  VISCOUNT_CONFIG      Config file to use when --config is not given.

Exit codes:
  0  clean shutdown (or valid config with --validate)
  1  bad config or bad arguments
  2  runtime failure, e.g. a listener cannot bind

Signals: SIGTERM/SIGINT drain and exit; SIGHUP reloads the config file.
)";
  const auto substitute = [&usage](std::string_view placeholder, std::string_view value) {
    const auto at = usage.find(placeholder);
    if (at != std::string::npos) usage.replace(at, placeholder.size(), value);
  };
  substitute("DEFAULT_LISTEN", kDefaultListenAddress);
  substitute("DEFAULT_UPSTREAM", kPrintConfigDefaultUpstream);
  return usage;
}

}  // namespace viscount
