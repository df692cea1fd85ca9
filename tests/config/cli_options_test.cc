#include "config/cli_options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config_loader.h"

namespace viscount {
namespace {

CliParseResult parse(std::vector<const char*> args, const char* env = nullptr) {
  args.insert(args.begin(), "viscount");
  return parseCli(static_cast<int>(args.size()), args.data(), env);
}

CliOptions options(std::vector<const char*> args, const char* env = nullptr) {
  const auto result = parse(std::move(args), env);
  EXPECT_TRUE(result.options.has_value()) << result.error;
  EXPECT_TRUE(result.error.empty());
  return result.options.value_or(CliOptions{});
}

std::string error(std::vector<const char*> args, const char* env = nullptr) {
  const auto result = parse(std::move(args), env);
  EXPECT_FALSE(result.options.has_value());
  EXPECT_FALSE(result.error.empty());
  return result.error;
}

TEST(CliTest, RunWithConfig) {
  for (const auto& args : std::vector<std::vector<const char*>>{
           {"--config", "/etc/v.yaml"}, {"--config=/etc/v.yaml"}, {"-c", "/etc/v.yaml"}}) {
    const CliOptions o = options(args);
    EXPECT_EQ(o.mode, CliMode::kRun);
    EXPECT_EQ(o.config_path, "/etc/v.yaml");
    EXPECT_EQ(o.upstream_url, "");
  }
}

TEST(CliTest, ConfigFromEnvironment) {
  const CliOptions o = options({}, "/env/v.yaml");
  EXPECT_EQ(o.mode, CliMode::kRun);
  EXPECT_EQ(o.config_path, "/env/v.yaml");
}

TEST(CliTest, FlagWinsOverEnvironment) {
  EXPECT_EQ(options({"--config", "/flag.yaml"}, "/env.yaml").config_path, "/flag.yaml");
}

TEST(CliTest, EmptyEnvironmentIsUnset) {
  EXPECT_NE(error({}, "").find("nothing to run"), std::string::npos);
}

TEST(CliTest, ZeroConfigMode) {
  CliOptions o = options({"--upstream", "http://127.0.0.1:8000"});
  EXPECT_EQ(o.mode, CliMode::kRun);
  EXPECT_EQ(o.upstream_url, "http://127.0.0.1:8000");
  EXPECT_EQ(o.listen_address, "");
  EXPECT_EQ(o.config_path, "");

  o = options({"--upstream=h2c://app:9000", "--listen=0.0.0.0:9090"});
  EXPECT_EQ(o.upstream_url, "h2c://app:9000");
  EXPECT_EQ(o.listen_address, "0.0.0.0:9090");

  o = options({"--listen", "[::1]:8081", "--upstream", "http://x"});
  EXPECT_EQ(o.listen_address, "[::1]:8081");
}

TEST(CliTest, AdminAddressInZeroConfigMode) {
  EXPECT_EQ(options({"--upstream", "http://x", "--admin", "127.0.0.1:0"}).admin_address,
            "127.0.0.1:0");
  EXPECT_EQ(options({"--upstream", "http://x", "--admin=off"}).admin_address, "off");
  EXPECT_NE(error({"--config", "f.yaml", "--admin", "127.0.0.1:1"}).find("--admin"),
            std::string::npos);

  auto off = makeZeroConfig("http://127.0.0.1:8000", "", "off");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off.config->admin.address.has_value());
  auto moved = makeZeroConfig("http://127.0.0.1:8000", "", "127.0.0.1:15999");
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved.config->admin.address->port, 15999);
  auto bad = makeZeroConfig("http://127.0.0.1:8000", "", "nope");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.errors[0].file, "--admin");
}

TEST(CliTest, ExplicitUpstreamOverridesEnvironmentConfig) {
  const CliOptions o = options({"--upstream", "http://127.0.0.1:8000"}, "/env.yaml");
  EXPECT_EQ(o.mode, CliMode::kRun);
  EXPECT_EQ(o.config_path, "");
  EXPECT_EQ(o.upstream_url, "http://127.0.0.1:8000");
}

TEST(CliTest, UpstreamAndConfigConflict) {
  EXPECT_NE(error({"--config", "a.yaml", "--upstream", "http://x"})
                .find("--upstream cannot be combined with --config"),
            std::string::npos);
}

TEST(CliTest, ListenNeedsUpstream) {
  EXPECT_NE(error({"--listen", ":8080"}).find("--listen only applies with --upstream"),
            std::string::npos);
  EXPECT_NE(error({"--config", "a.yaml", "--listen", ":8080"}).find("--listen"), std::string::npos);
}

TEST(CliTest, Validate) {
  CliOptions o = options({"--validate", "--config", "v.yaml"});
  EXPECT_EQ(o.mode, CliMode::kValidate);
  EXPECT_EQ(o.config_path, "v.yaml");

  o = options({"--config=v.yaml", "--validate"});
  EXPECT_EQ(o.mode, CliMode::kValidate);

  o = options({"--validate"}, "/env.yaml");
  EXPECT_EQ(o.mode, CliMode::kValidate);
  EXPECT_EQ(o.config_path, "/env.yaml");
}

TEST(CliTest, ValidateRequiresAConfig) {
  const std::string message = error({"--validate"});
  EXPECT_NE(message.find("--config FILE"), std::string::npos) << message;
  EXPECT_NE(message.find("VISCOUNT_CONFIG"), std::string::npos) << message;
  EXPECT_NE(error({"--validate", "--upstream", "http://x"}).find("--config"), std::string::npos);
}

TEST(CliTest, PrintConfig) {
  CliOptions o = options({"--print-config", "--config", "v.yaml"});
  EXPECT_EQ(o.mode, CliMode::kPrintConfig);
  EXPECT_EQ(o.config_path, "v.yaml");
  EXPECT_EQ(o.upstream_url, "");

  o = options({"--print-config", "--upstream", "http://app:81", "--listen", ":9000"});
  EXPECT_EQ(o.mode, CliMode::kPrintConfig);
  EXPECT_EQ(o.upstream_url, "http://app:81");
  EXPECT_EQ(o.listen_address, ":9000");

  o = options({"--print-config"}, "/env.yaml");
  EXPECT_EQ(o.config_path, "/env.yaml");
}

TEST(CliTest, PrintConfigAloneUsesZeroConfigDefaults) {
  const CliOptions o = options({"--print-config"});
  EXPECT_EQ(o.mode, CliMode::kPrintConfig);
  EXPECT_EQ(o.config_path, "");
  EXPECT_EQ(o.upstream_url, "http://127.0.0.1:8000");
  EXPECT_EQ(o.listen_address, "");
  // What main() does with it must work.
  EXPECT_TRUE(makeZeroConfig(o.upstream_url, o.listen_address).ok());
}

TEST(CliTest, VersionAndHelp) {
  EXPECT_EQ(options({"--version"}).mode, CliMode::kVersion);
  EXPECT_EQ(options({"--help"}).mode, CliMode::kHelp);
  EXPECT_EQ(options({"-h"}).mode, CliMode::kHelp);
  EXPECT_EQ(options({"--config", "a.yaml", "--version"}).mode, CliMode::kVersion);
  // Help must work even on a broken command line: that is when people ask for it.
  EXPECT_EQ(options({"--bogus", "--help"}).mode, CliMode::kHelp);
  EXPECT_EQ(options({"--config", "--help"}).mode, CliMode::kHelp);
  EXPECT_EQ(options({"--version", "--help"}).mode, CliMode::kHelp);
}

TEST(CliTest, UnknownFlag) {
  const std::string message = error({"--config", "a.yaml", "--verbose"});
  EXPECT_EQ(message, "unknown option '--verbose' (see --help)");
  EXPECT_EQ(error({"--config=a.yaml", "--port=80"}), "unknown option '--port' (see --help)");
  EXPECT_EQ(error({"-x"}), "unknown option '-x' (see --help)");
}

TEST(CliTest, MissingValue) {
  EXPECT_EQ(error({"--config"}), "--config needs a value (see --help)");
  EXPECT_EQ(error({"--upstream"}), "--upstream needs a value (see --help)");
  EXPECT_EQ(error({"--upstream", "http://x", "--listen"}), "--listen needs a value (see --help)");
  EXPECT_EQ(error({"--config", "--validate"}), "--config needs a value (see --help)");
  EXPECT_EQ(error({"--config="}), "--config needs a non-empty value (see --help)");
}

TEST(CliTest, ValueThatLooksLikeAFlagNeedsEquals) {
  EXPECT_EQ(options({"--config=--odd.yaml"}).config_path, "--odd.yaml");
  EXPECT_EQ(options({"--config", "-odd.yaml"}).config_path, "-odd.yaml");
}

TEST(CliTest, SwitchesTakeNoValue) {
  EXPECT_EQ(error({"--validate=yes", "--config", "a.yaml"}),
            "--validate does not take a value (see --help)");
}

TEST(CliTest, RepeatedFlag) {
  EXPECT_EQ(error({"--config", "a.yaml", "--config", "b.yaml"}),
            "--config given more than once (see --help)");
}

TEST(CliTest, PositionalArgument) {
  EXPECT_EQ(error({"viscount.yaml"}), "unexpected argument 'viscount.yaml' (see --help)");
  EXPECT_EQ(error({"--config", "a.yaml", "extra"}), "unexpected argument 'extra' (see --help)");
  EXPECT_EQ(error({"-"}), "unexpected argument '-' (see --help)");
}

TEST(CliTest, ValidateAndPrintConfigAreExclusive) {
  EXPECT_EQ(error({"--validate", "--print-config", "--config", "a.yaml"}),
            "--validate and --print-config cannot be combined");
}

TEST(CliTest, NothingToRunSaysWhatToPass) {
  const std::string message = error({});
  EXPECT_NE(message.find("--config FILE"), std::string::npos) << message;
  EXPECT_NE(message.find("VISCOUNT_CONFIG"), std::string::npos) << message;
  EXPECT_NE(message.find("--upstream URL"), std::string::npos) << message;
}

TEST(CliTest, UsageListsEveryFlagAndTheEnvironment) {
  const std::string usage = cliUsage();
  for (const char* text :
       {"--config", "--upstream", "--listen", "--validate", "--print-config", "--version", "--help",
        "VISCOUNT_CONFIG", "127.0.0.1:8080", "http://127.0.0.1:8000", "Exit codes"}) {
    EXPECT_NE(usage.find(text), std::string::npos) << text;
  }
  EXPECT_EQ(usage.find("DEFAULT_"), std::string::npos) << usage;
}

}  // namespace
}  // namespace viscount
