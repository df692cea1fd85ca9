// Fuzzes the config loader: the input is a config file's text, loaded and validated as
// `--validate`, SIGHUP and the file watcher load it.
//
// Checked beyond not crashing:
// - a result holds a config or errors, never both; every error has a position and a message,
//   and no error is reported twice;
// - a config the loader accepts is one the proxy can run: its context filter compiles;
// - the admin endpoint can render it as JSON (/config), and --print-config's YAML loads back
//   into an equal config.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <tuple>

#include "config/config_loader.h"
#include "filters/context_filter.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace viscount;
  using fuzz::escaped;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const ConfigLoadResult result = loadConfigString(text, "fuzz.yaml");
  FUZZ_CHECK(result.ok() == result.errors.empty());

  std::set<std::tuple<int, int, std::string>> seen;
  for (const ConfigError& e : result.errors) {
    FUZZ_CHECK(e.file == "fuzz.yaml" && e.line >= 1 && e.column >= 1 && !e.message.empty());
    if (!seen.emplace(e.line, e.column, e.message).second) {
      std::fprintf(stderr, "reported twice: %s\n", escaped(e.format()).c_str());
      FUZZ_FAIL("an error reported twice");
    }
  }
  if (!result.ok()) return 0;
  const Config& config = *result.config;

  std::string why;
  const bool filter_ok = ContextFilter::create(config.context, &why) != nullptr;
  if (!filter_ok) std::fprintf(stderr, "accepted, but: %s\n", escaped(why).c_str());
  FUZZ_CHECK(filter_ok);

  try {
    const std::string json = toJsonText(config);
    FUZZ_CHECK(!json.empty());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "/config cannot render it: %s\n", e.what());
    FUZZ_FAIL("toJsonText threw");
  }

  const std::string printed = toYaml(config);
  const ConfigLoadResult again = loadConfigString(printed, "fuzz.yaml");
  if (!again.ok() || !(*again.config == config)) {
    std::fprintf(stderr, "--print-config gave:\n%s\n", printed.c_str());
    for (const ConfigError& e : again.errors)
      std::fprintf(stderr, "which loads with: %s\n", escaped(e.format()).c_str());
  }
  FUZZ_CHECK(again.ok() && *again.config == config);
  return 0;
}
