// viscount: the sidecar binary. Parses the command line, loads the config, runs the Server.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "config/cli_options.h"
#include "config/config_loader.h"
#include "proxy/server/server.h"
#include "telemetry/event_log.h"

using namespace viscount;

namespace {

int printErrors(const ConfigLoadResult& result) {
  for (const ConfigError& e : result.errors)
    std::cerr << e.format() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const CliParseResult cli = parseCli(argc, argv, std::getenv("VISCOUNT_CONFIG"));
  if (!cli.options) {
    std::cerr << "viscount: " << cli.error << "\n"
              << "Run 'viscount --help' for usage.\n";
    return 1;
  }
  const CliOptions& opts = *cli.options;
  switch (opts.mode) {
    case CliMode::kHelp:
      std::cout << cliUsage();
      return 0;
    case CliMode::kVersion:
      std::cout << "viscount " << VISCOUNT_VERSION << "\n";
      return 0;
    default:
      break;
  }

  ConfigLoadResult loaded;
  if (!opts.config_path.empty()) {
    loaded = loadConfigFile(opts.config_path);
  } else {
    // No file: a developer in front of a local service. Readable lines on a terminal, JSON
    // when the output goes to a pipe or a collector.
    const LogFormat format = ::isatty(STDOUT_FILENO) ? LogFormat::kPretty : LogFormat::kJson;
    loaded = makeZeroConfig(opts.upstream_url, opts.listen_address, opts.admin_address, format);
  }
  if (!loaded.ok()) return printErrors(loaded);
  if (auto unsupported = Server::unsupportedSettings(*loaded.config); !unsupported.empty()) {
    const std::string where = opts.config_path.empty() ? "viscount" : opts.config_path;
    for (const auto& message : unsupported)
      std::cerr << where << ": " << message << "\n";
    return 1;
  }

  if (opts.mode == CliMode::kValidate) {
    std::cerr << opts.config_path << ": configuration is valid\n";
    return 0;
  }
  if (opts.mode == CliMode::kPrintConfig) {
    std::cout << toYaml(*loaded.config);
    return 0;
  }

  Server server(loaded.config);
  std::string error;
  if (!server.start(&error)) {
    server.events().log(LogLevel::kError, "startup_failed", {{"reason", std::string_view(error)}});
    server.events().flush();
    std::cerr << "viscount: " << error << "\n";
    return 2;
  }
  return server.run();
}
