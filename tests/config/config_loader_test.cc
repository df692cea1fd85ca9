// Loader errors: every problem is reported, with the position of the offending key or value.

#include "config/config_loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <type_traits>

#include "tests/config/config_loader_test_support.h"

namespace viscount {
namespace {

using testing::errorOf;
using testing::errorsOf;
using testing::kListenerAndUpstream;
using testing::load;

TEST(ConfigErrorTest, FormatsFileLineColumnMessage) {
  const ConfigError error{"viscount.yaml", 12, 7, "something is wrong"};
  EXPECT_EQ(error.format(), "viscount.yaml:12:7: something is wrong");
}

TEST(ConfigLoaderTest, MinimalConfigLoadsAsImmutableSnapshot) {
  const auto result = loadConfigString(kListenerAndUpstream, "min.yaml");
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result.errors.empty());
  static_assert(std::is_same_v<decltype(ConfigLoadResult::config), ConfigPtr>);
  static_assert(std::is_const_v<ConfigPtr::element_type>);
  EXPECT_EQ(result.config->source_path, "min.yaml");
  EXPECT_EQ(result.config->listeners.size(), 1u);
  EXPECT_EQ(result.config->upstreams.size(), 1u);
}

TEST(ConfigLoaderTest, UnknownTopLevelKey) {
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "verbose: true\n"),
            "test.yaml:8:1: unknown key 'verbose' (expected one of: workers, drain_timeout, "
            "watch_config, io_uring, listeners, upstreams, context, logging, admin)");
}

TEST(ConfigLoaderTest, IoUringIsOnByDefaultAndTakesABool) {
  auto on = loadConfigString(kListenerAndUpstream, "test.yaml");
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(on.config->io_uring);
  auto off = loadConfigString(std::string(kListenerAndUpstream) + "io_uring: false\n", "t.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off.config->io_uring);
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "io_uring: auto\n"),
            "test.yaml:8:11: io_uring: expected true or false, got 'auto'");
}

TEST(ConfigLoaderTest, UpstreamTlsSettings) {
  const std::string https = R"(listeners:
  - {name: inbound, address: 127.0.0.1:0, upstream: app}
upstreams:
  - name: app
    url: https://api.internal:8443
)";
  auto defaults = loadConfigString(https, "test.yaml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults.config->upstreams[0].tls.verify);
  EXPECT_EQ(defaults.config->upstreams[0].tls.ca_file, "");

  auto set = loadConfigString(
      https + "    tls: {verify: false, ca_file: /ca.pem, server_name: api}\n", "test.yaml");
  ASSERT_TRUE(set.ok());
  EXPECT_FALSE(set.config->upstreams[0].tls.verify);
  EXPECT_EQ(set.config->upstreams[0].tls.ca_file, "/ca.pem");
  EXPECT_EQ(set.config->upstreams[0].tls.server_name, "api");

  EXPECT_EQ(errorOf(https + "    tls: {certificate: /c.pem}\n"),
            "test.yaml:6:10: upstreams[0].tls: certificate and private_key go together (a client "
            "certificate for mTLS)");
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "    tls: {verify: false}\n"),
            "test.yaml:8:10: upstreams[0].tls: only an https:// upstream uses tls");
}

TEST(ConfigLoaderTest, UserIdFromCertificateNeedsAClientCa) {
  const std::string listener = R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
    tls: {certificate: /c.pem, private_key: /k.pem, user_id_from_certificate: true}
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)";
  EXPECT_EQ(errorOf(listener),
            "test.yaml:5:79: listeners[0].tls.user_id_from_certificate: needs client_ca: only a "
            "verified client certificate can name the user");
}

TEST(ConfigLoaderTest, WatchConfigIsOnByDefaultAndTakesABool) {
  auto on = loadConfigString(kListenerAndUpstream, "test.yaml");
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(on.config->watch_config);
  auto off =
      loadConfigString(std::string(kListenerAndUpstream) + "watch_config: false\n", "t.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off.config->watch_config);
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "watch_config: sometimes\n"),
            "test.yaml:8:15: watch_config: expected true or false, got 'sometimes'");
}

TEST(ConfigLoaderTest, UnknownKeySuggestsTheClosestKnownOne) {
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "    limts: {}\n"),
            "test.yaml:8:5: unknown key 'limts' in upstreams[0]; did you mean 'limits'?");
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "draintimeout: 5s\n"),
            "test.yaml:8:1: unknown key 'draintimeout'; did you mean 'drain_timeout'?");
}

TEST(ConfigLoaderTest, UnknownNestedKey) {
  const std::string yaml = R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    timeouts:
      idle: 5m
      read: 10s
upstreams:
  - name: app
    url: http://127.0.0.1:8000
    pool: {size: 5, max_idle: 3}
)";
  const auto errors = errorsOf(yaml);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].format(),
            "test.yaml:6:7: unknown key 'read' in listeners[0].timeouts (expected one of: "
            "request_headers, idle, tunnel_idle)");
  EXPECT_EQ(errors[1].line, 10);
  EXPECT_EQ(errors[1].column, 21);
  EXPECT_NE(errors[1].message.find("unknown key 'max_idle' in upstreams[0].pool"),
            std::string::npos);
}

TEST(ConfigLoaderTest, DuplicateKey) {
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "drain_timeout: 5s\ndrain_timeout: 6s\n"),
            "test.yaml:9:1: duplicate key 'drain_timeout' (first at line 8)");
}

TEST(ConfigLoaderTest, MergeKeysShareSettings) {
  const auto config = load(R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: a
upstreams:
  - name: a
    url: http://127.0.0.1:8000
    pool: &pool
      size: 5
      recycle: 2h
  - name: b
    url: http://127.0.0.1:8001
    pool:
      <<: *pool
      size: 7
)");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->upstreams[1].pool.size, 7u);  // the map's own key wins
  EXPECT_EQ(config->upstreams[1].pool.recycle, std::chrono::hours(2));
  EXPECT_EQ(config->upstreams[1].pool.max_overflow, 20u);
}

TEST(ConfigLoaderTest, MergedKeysAreCheckedToo) {
  const auto errors = errorsOf(std::string(kListenerAndUpstream) + R"(    timeouts:
      <<: {connect: 1s, read: 2s}
    pool:
      <<: [5]
)");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].format(),
            "test.yaml:9:25: unknown key 'read' in upstreams[0].timeouts (expected one of: "
            "connect, request, deadline_header, grpc_no_deadline)");
  EXPECT_EQ(errors[1].format(),
            "test.yaml:11:12: upstreams[0].pool: '<<' needs a map or a list of maps");
}

TEST(ConfigLoaderTest, WrongTypes) {
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "context: [a, b]\n"),
            "test.yaml:8:10: context: expected a map, got a list");
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "logging: verbose\n"),
            "test.yaml:8:10: logging: expected a map, got a value");
  EXPECT_EQ(errorOf("listeners: inbound\nupstreams:\n  - name: app\n    url: http://a\n"),
            "test.yaml:1:12: listeners: expected a list, got a value");
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "drain_timeout: {a: 1}\n"),
            "test.yaml:8:16: drain_timeout: expected a value, got a map");
  EXPECT_EQ(errorOf("- listeners\n"), "test.yaml:1:1: config: expected a map, got a list");
}

TEST(ConfigLoaderTest, BadBooleansAndIntegers) {
  const std::string yaml = R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    http2: maybe
    limits:
      max_connections: -5
upstreams:
  - name: app
    url: http://127.0.0.1:8000
    pool:
      size: abc
      max_overflow: 1.5
      pre_ping: 1
    retries:
      attempts: 4294967296
)";
  const auto errors = errorsOf(yaml);
  ASSERT_EQ(errors.size(), 6u);
  EXPECT_EQ(errors[0].format(),
            "test.yaml:4:12: listeners[0].http2: expected true or false, got 'maybe'");
  EXPECT_EQ(errors[1].format(),
            "test.yaml:6:24: listeners[0].limits.max_connections: expected an integer from 1 to "
            "4294967295, got '-5'");
  EXPECT_EQ(errors[2].format(),
            "test.yaml:11:13: upstreams[0].pool.size: expected an integer from 0 to 4294967295, "
            "got 'abc'");
  EXPECT_EQ(errors[3].line, 12);
  EXPECT_EQ(errors[4].format(),
            "test.yaml:13:17: upstreams[0].pool.pre_ping: expected true or false, got '1'");
  EXPECT_EQ(errors[5].line, 15);
  EXPECT_EQ(errors[5].column, 17);
}

TEST(ConfigLoaderTest, AcceptsYaml11Booleans) {
  const auto config = load(std::string(kListenerAndUpstream) +
                           "context:\n  trace_context: no\n  echo_in_response: Off\n");
  ASSERT_TRUE(config);
  EXPECT_FALSE(config->context.trace_context);
  EXPECT_FALSE(config->context.echo_in_response);
}

TEST(ConfigLoaderTest, BadDurations) {
  const std::string yaml = std::string(kListenerAndUpstream) + R"(    timeouts:
      connect: 1
      request: -15s
drain_timeout: 5 minutes
)";
  const auto errors = errorsOf(yaml);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].format(),
            "test.yaml:9:16: upstreams[0].timeouts.connect: invalid duration '1': missing unit "
            "(ms, s, m or h), e.g. 15s");
  EXPECT_EQ(errors[1].format(),
            "test.yaml:10:16: upstreams[0].timeouts.request: invalid duration '-15s': durations "
            "cannot be negative");
  EXPECT_EQ(errors[2].line, 11);
  EXPECT_EQ(errors[2].column, 16);
}

TEST(ConfigLoaderTest, ZeroTimeoutsThatWouldFailEveryRequest) {
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "    timeouts: {connect: 0s}\n"),
            "test.yaml:8:25: upstreams[0].timeouts.connect: must be at least 1ms");
  // Zero waits are meaningful: fail at once instead of queueing.
  const auto config = load(std::string(kListenerAndUpstream) +
                           "    pool: {wait_timeout: 0s}\n    limits: {queue_timeout: 0ms}\n"
                           "drain_timeout: 0s\n");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->upstreams[0].pool.wait_timeout, Duration::zero());
  EXPECT_EQ(config->upstreams[0].limits.queue_timeout, Duration::zero());
  EXPECT_EQ(config->drain_timeout, Duration::zero());
}

TEST(ConfigLoaderTest, BadSizes) {
  const std::string yaml = R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    limits:
      max_request_headers_size: 60K
      max_request_body_size: -1
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)";
  const auto errors = errorsOf(yaml);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].format(),
            "test.yaml:5:33: listeners[0].limits.max_request_headers_size: invalid size '60K': "
            "unknown unit 'K' (use B, KiB, MiB, GiB, TiB, or decimal KB, MB, GB, TB)");
  EXPECT_EQ(errors[1].format(),
            "test.yaml:6:30: listeners[0].limits.max_request_body_size: invalid size '-1': sizes "
            "cannot be negative");
}

TEST(ConfigLoaderTest, BadUrl) {
  const std::string yaml = R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
upstreams:
  - name: app
    url: http://127.0.0.1:8000/v1
)";
  EXPECT_EQ(errorOf(yaml),
            "test.yaml:6:10: upstreams[0].url: invalid upstream URL 'http://127.0.0.1:8000/v1': a "
            "path is not allowed in an upstream URL (got '/v1'); requests keep the path the "
            "client sent");
}

TEST(ConfigLoaderTest, BadAddresses) {
  const std::string yaml = R"(listeners:
  - name: inbound
    address: example.com:80
  - name: other
    address: "[::1]"
upstreams:
  - name: app
    url: http://127.0.0.1:8000
admin:
  address: nowhere
)";
  const auto errors = errorsOf(yaml);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].line, 3);
  EXPECT_EQ(errors[0].column, 14);
  EXPECT_NE(errors[0].message.find("listeners[0].address: invalid address 'example.com:80'"),
            std::string::npos);
  EXPECT_EQ(errors[1].format(),
            "test.yaml:5:14: listeners[1].address: invalid address '[::1]': missing port, e.g. "
            "[::1]:8080");
  EXPECT_EQ(errors[2].line, 10);
  EXPECT_EQ(errors[2].column, 12);
  EXPECT_NE(errors[2].message.find("admin.address: invalid address 'nowhere'"), std::string::npos);
}

TEST(ConfigLoaderTest, BadCidrs) {
  const auto errors = errorsOf(std::string(kListenerAndUpstream) +
                               "context:\n  trusted_sources: [10.0.0.0/8, 10.0.0.0/33, "
                               "\"::1/129\", {a: b}]\n");
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].format(),
            "test.yaml:9:33: context.trusted_sources[1]: expected a CIDR such as 10.0.0.0/8, "
            "::1/128, a single address or unix, got '10.0.0.0/33'");
  EXPECT_EQ(errors[1].line, 9);
  EXPECT_EQ(errors[1].column, 46);
  EXPECT_EQ(errors[2].column, 57);
  EXPECT_NE(errors[2].message.find("got a map"), std::string::npos);
}

TEST(ConfigLoaderTest, BadEnumValues) {
  const std::string yaml = std::string(kListenerAndUpstream) + R"(context:
  request_id:
    generate: uuid5
logging:
  format: xml
  level: loud
)";
  const auto errors = errorsOf(yaml);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].format(),
            "test.yaml:10:15: context.request_id.generate: invalid value 'uuid5' (expected uuid4 "
            "or uuid7)");
  EXPECT_EQ(errors[1].format(),
            "test.yaml:12:11: logging.format: invalid value 'xml' (expected json or pretty)");
  EXPECT_EQ(errors[2].format(),
            "test.yaml:13:10: logging.level: invalid value 'loud' (expected trace, debug, info, "
            "warn or error)");
}

TEST(ConfigLoaderTest, InvalidRegexes) {
  const std::string yaml = std::string(kListenerAndUpstream) + R"(context:
  id_pattern: "^[a-z"
  user_id:
    pattern: "(unclosed"
)";
  const auto errors = errorsOf(yaml);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].line, 9);
  EXPECT_EQ(errors[0].column, 15);
  EXPECT_NE(errors[0].message.find("context.id_pattern: invalid regular expression '^[a-z'"),
            std::string::npos);
  EXPECT_EQ(errors[1].line, 11);
  EXPECT_EQ(errors[1].column, 14);
  EXPECT_NE(errors[1].message.find("context.user_id.pattern: invalid regular expression"),
            std::string::npos);
}

TEST(ConfigLoaderTest, BackReferencesAreRefusedLikeTheMatcherDoes) {
  // The matcher runs in bounded-stack mode, which has no back-references; --validate must not
  // accept a pattern the proxy then cannot run.
  const std::string yaml = std::string(kListenerAndUpstream) + R"(context:
  id_pattern: "^(a)\\1$"
)";
  const auto errors = errorsOf(yaml);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message.find("context.id_pattern: invalid regular expression"),
            std::string::npos);
}

TEST(ConfigLoaderTest, RegexCountsOver1000AreRefused) {
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) +
                    "context:\n  id_pattern: \"^[a-z]{1,99999999999999999999}$\"\n"),
            "test.yaml:9:15: context.id_pattern: invalid regular expression "
            "'^[a-z]{1,99999999999999999999}$': a repetition count over 1000 (the counts of nested "
            "repetitions multiply)");
}

TEST(ConfigLoaderTest, ValuesMustBeUtf8) {
  // YAML is Unicode text, but yaml-cpp passes other bytes through in plain scalars and turns
  // them into U+FFFD in quoted ones: such a value came back changed from --print-config.
  EXPECT_EQ(
      errorOf(std::string(kListenerAndUpstream) + "logging: {access_log: /var/log/\xb4\xff.log}\n"),
      "test.yaml:8:23: logging.access_log: not valid UTF-8");
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "context:\n  id_pattern: \"^[\xc3]$\"\n"),
            "test.yaml:9:15: context.id_pattern: not valid UTF-8");
  const auto config =
      load(std::string(kListenerAndUpstream) + "logging: {access_log: /var/log/caf\xc3\xa9.log}\n");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->logging.access_log, "/var/log/caf\xc3\xa9.log");
}

TEST(ConfigLoaderTest, MissingUpstreamReference) {
  const std::string yaml = R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: backend
upstreams:
  - name: app
    url: http://127.0.0.1:8000
  - name: auth
    url: http://127.0.0.1:8001
)";
  EXPECT_EQ(errorOf(yaml),
            "test.yaml:4:15: listeners[0].upstream: unknown upstream 'backend' (defined: app, "
            "auth)");
}

TEST(ConfigLoaderTest, UpstreamMayBeOmittedOnlyWhenThereIsOne) {
  const auto config = load(R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
upstreams:
  - name: only
    url: http://127.0.0.1:8000
)");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->listeners[0].upstream, "only");

  EXPECT_EQ(errorOf(R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
upstreams:
  - name: a
    url: http://127.0.0.1:8000
  - name: b
    url: http://127.0.0.1:8001
)"),
            "test.yaml:2:5: listeners[0]: missing required key 'upstream' (there is more than one "
            "upstream: a, b)");
}

TEST(ConfigLoaderTest, YamlSyntaxError) {
  EXPECT_EQ(errorOf("listeners:\n  - name: [inbound\nupstreams: []\n"),
            "test.yaml:3:10: invalid YAML: end of sequence flow not found");
  const auto errors = errorsOf("listeners:\n  - name: a\n   address: b\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].line, 3);
  EXPECT_NE(errors[0].message.find("invalid YAML"), std::string::npos);
}

TEST(ConfigLoaderTest, EmptyConfigAndMissingSections) {
  EXPECT_EQ(errorOf(""),
            "test.yaml:1:1: the config is empty; it needs at least 'listeners' and 'upstreams'");
  EXPECT_EQ(errorOf("# nothing\n"),
            "test.yaml:1:1: the config is empty; it needs at least 'listeners' and 'upstreams'");
  const auto errors = errorsOf("workers: 2\n");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].format(), "test.yaml:1:1: config: missing required key 'upstreams'");
  EXPECT_EQ(errors[1].format(), "test.yaml:1:1: config: missing required key 'listeners'");
}

TEST(ConfigLoaderTest, ZeroListenersOrUpstreams) {
  const auto errors = errorsOf("listeners: []\nupstreams:\n");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].format(), "test.yaml:1:12: listeners: at least one listener is required");
  EXPECT_EQ(errors[1].format(), "test.yaml:2:1: upstreams: at least one upstream is required");
}

TEST(ConfigLoaderTest, MissingRequiredKeysInItems) {
  const auto errors = errorsOf("listeners:\n  - upstream: app\nupstreams:\n  - name: app\n");
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].format(), "test.yaml:2:5: listeners[0]: missing required key 'name'");
  EXPECT_EQ(errors[1].format(), "test.yaml:2:5: listeners[0]: missing required key 'address'");
  EXPECT_EQ(errors[2].format(), "test.yaml:4:5: upstreams[0]: missing required key 'url'");
}

TEST(ConfigLoaderTest, DuplicateNames) {
  const std::string yaml = R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
upstreams:
  - name: app
    url: http://127.0.0.1:8000
  - name: app
    url: http://127.0.0.1:8001
)";
  const auto errors = errorsOf(yaml);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].format(),
            "test.yaml:5:11: listeners[1].name: duplicate listener name 'inbound' (first defined "
            "at line 2)");
  EXPECT_EQ(errors[1].format(),
            "test.yaml:11:11: upstreams[1].name: duplicate upstream name 'app' (first defined at "
            "line 9)");
}

TEST(ConfigLoaderTest, InvalidNames) {
  EXPECT_EQ(errorOf("listeners:\n  - name: in bound\n    address: 127.0.0.1:0\nupstreams:\n"
                    "  - name: app\n    url: http://a\n"),
            "test.yaml:2:11: listeners[0].name: invalid name 'in bound': use 1 to 128 letters, "
            "digits, '-', '_' or '.'");
  EXPECT_EQ(errorOf("listeners:\n  - name: \"\"\n    address: 127.0.0.1:0\nupstreams:\n"
                    "  - name: app\n    url: http://a\n"),
            "test.yaml:2:11: listeners[0].name: must not be empty");
}

TEST(ConfigLoaderTest, DuplicateListenerAddresses) {
  const std::string yaml = R"(listeners:
  - name: a
    address: 0.0.0.0:8080
  - name: b
    address: "*:8080"
  - name: c
    address: 127.0.0.1:8080
  - name: d
    address: "[::]:8080"
upstreams:
  - name: app
    url: http://127.0.0.1:8000
admin:
  address: 10.0.0.1:8080
)";
  const auto errors = errorsOf(yaml);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].format(),
            "test.yaml:5:14: listeners[1].address: 0.0.0.0:8080 conflicts with listener 'a' on "
            "0.0.0.0:8080");
  EXPECT_EQ(errors[1].format(),
            "test.yaml:7:14: listeners[2].address: 127.0.0.1:8080 conflicts with listener 'a' on "
            "0.0.0.0:8080");
  EXPECT_EQ(errors[2].format(),
            "test.yaml:14:12: admin.address: 10.0.0.1:8080 conflicts with listener 'a' on "
            "0.0.0.0:8080");
}

TEST(ConfigLoaderTest, PortZeroNeverConflicts) {
  const auto config = load(R"(listeners:
  - name: a
    address: 127.0.0.1:0
    upstream: app
  - name: b
    address: 127.0.0.1:0
    upstream: app
upstreams:
  - name: app
    url: http://127.0.0.1:8000
admin:
  address: 127.0.0.1:0
)");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->listeners[1].address.port, 0);
  ASSERT_TRUE(config->admin.address);
  EXPECT_EQ(config->admin.address->port, 0);
}

TEST(ConfigLoaderTest, Workers) {
  EXPECT_EQ(load(std::string(kListenerAndUpstream) + "workers: auto\n")->workers, 0u);
  EXPECT_EQ(load(std::string(kListenerAndUpstream) + "workers: 1\n")->workers, 1u);
  EXPECT_EQ(load(std::string(kListenerAndUpstream) + "workers: 256\n")->workers, 256u);
  for (const char* bad : {"0", "257", "-1", "many", "AUTO", "2.5"}) {
    EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "workers: " + bad + "\n"),
              std::string("test.yaml:8:10: workers: expected auto or an integer from 1 to 256, "
                          "got '") +
                  bad + "'");
  }
}

TEST(ConfigLoaderTest, ContextHeaders) {
  const auto config = load(std::string(kListenerAndUpstream) +
                           "context:\n  request_id:\n    header: X-Request-ID\n"
                           "  user_id:\n    header: X-Auth-User\n");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->context.request_id.header, "x-request-id");
  EXPECT_EQ(config->context.user_id.header, "x-auth-user");

  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) +
                    "context:\n  correlation_id:\n    header: X Correlation\n"),
            "test.yaml:10:13: context.correlation_id.header: invalid header name 'X Correlation'");
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) +
                    "context:\n  user_id:\n    header: Traceparent\n"),
            "test.yaml:10:13: context.user_id.header: 'traceparent' is used by the proxy itself "
            "and cannot carry an id");
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "context:\n  user_id:\n    header: \"\"\n"),
            "test.yaml:10:13: context.user_id.header: must not be empty");
}

TEST(ConfigLoaderTest, HopByHopNamesCannotCarryAnId) {
  // The context filter refuses every hop-by-hop name; --validate must refuse the same ones.
  for (const char* name : {"connection", "te", "upgrade", "http2-settings", "transfer-encoding"}) {
    EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) +
                      "context:\n  user_id:\n    header: " + name + "\n"),
              std::string("test.yaml:10:13: context.user_id.header: '") + name +
                  "' is used by the proxy itself and cannot carry an id");
  }
}

TEST(ConfigLoaderTest, ContextHeadersMustBeDistinct) {
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) +
                    "context:\n  user_id:\n    header: X-Correlation-Id\n"),
            "test.yaml:10:13: context.user_id.header: header 'x-correlation-id' is already used "
            "by context.correlation_id.header");
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) +
                    "context:\n  request_id: {header: x-id}\n  correlation_id: {header: x-id}\n"),
            "test.yaml:10:28: context.correlation_id.header: header 'x-id' is already used by "
            "context.request_id.header");
  // Only the request id was renamed, onto the correlation id's default: the message names it.
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) +
                    "context:\n  request_id: {header: x-correlation-id}\n"),
            "test.yaml:9:24: context.request_id.header: header 'x-correlation-id' is already "
            "used by context.correlation_id.header");
}

TEST(ConfigLoaderTest, AdminOffAndAccessLogTargets) {
  const auto config = load(std::string(kListenerAndUpstream) +
                           "admin:\n  address: off\nlogging:\n  access_log: /var/log/access.log\n");
  ASSERT_TRUE(config);
  EXPECT_FALSE(config->admin.address.has_value());
  EXPECT_EQ(config->logging.access_log, "/var/log/access.log");
  for (const char* target : {"stdout", "stderr", "off", "relative/access.log"}) {
    EXPECT_EQ(load(std::string(kListenerAndUpstream) + "logging: {access_log: " + target + "}\n")
                  ->logging.access_log,
              target);
  }
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "logging: {access_log: \"\"}\n"),
            "test.yaml:8:23: logging.access_log: must not be empty");
}

TEST(ConfigLoaderTest, PoolThatCouldNeverConnect) {
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "    pool:\n      size: 0\n"
                                                        "      max_overflow: 0\n"),
            "test.yaml:9:7: upstreams[0].pool: size and max_overflow are both 0, so no connection "
            "could ever be opened");
  EXPECT_EQ(load(std::string(kListenerAndUpstream) + "    pool: {size: 0, max_overflow: 4}\n")
                ->upstreams[0]
                .pool.max_overflow,
            4u);
}

TEST(ConfigLoaderTest, SecondDocumentIsAnError) {
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "---\nworkers: 2\n"),
            "test.yaml:9:1: only one YAML document is allowed in a config file");
  EXPECT_TRUE(load(std::string(kListenerAndUpstream) + "---\n"));
}

TEST(ConfigLoaderTest, TextTheYamlParserCannotGetPastIsInvalid) {
  // yaml-cpp 0.7 reads a lone ',' as an endless run of empty documents that all start at the
  // same place: loading such a file filled memory and never returned (--validate, a reload).
  EXPECT_EQ(errorOf(","), "test.yaml:1:1: invalid YAML: unexpected ','");
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "---\n,\n"),
            "test.yaml:9:1: invalid YAML: unexpected ','");
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "---\n---\nworkers: 2\n"),
            "test.yaml:10:1: only one YAML document is allowed in a config file");
}

TEST(ConfigLoaderTest, AMistakeReadTwiceThroughAnAliasIsReportedOnce) {
  const auto errors = errorsOf(
      "listeners:\n"
      "  - {name: a, address: 127.0.0.1:81, limits: &l {max_connections: 1, , x: 2}}\n"
      "  - {name: b, address: 127.0.0.1:82, limits: *l}\n"
      "upstreams: [{name: app, url: \"http://127.0.0.1:8000\"}]\n");
  std::vector<std::string> lines;
  for (const auto& e : errors)
    lines.push_back(e.format());
  const std::string keys = "test.yaml:2:70: keys must be plain names, got nothing";
  EXPECT_EQ(std::count(lines.begin(), lines.end(), keys), 1) << ::testing::PrintToString(lines);
  // The same key under two paths says where each use is.
  EXPECT_EQ(lines.size(), 3u) << ::testing::PrintToString(lines);
}

TEST(ConfigLoaderTest, ReportsAllErrorsTogetherInFileOrder) {
  const std::string yaml = R"(workers: lots
listeners:
  - name: inbound
    address: 127.0.0.1
    upstream: nope
    timeouts: {idle: soon}
upstreams:
  - name: app
    url: gopher://x
logging:
  level: loud
admin:
  port: 15000
)";
  const auto errors = errorsOf(yaml);
  std::vector<std::pair<int, int>> positions;
  for (const auto& error : errors)
    positions.emplace_back(error.line, error.column);
  const std::vector<std::pair<int, int>> expected = {{1, 10}, {4, 14},  {5, 15}, {6, 22},
                                                     {9, 10}, {11, 10}, {13, 3}};
  EXPECT_EQ(positions, expected);
  for (const auto& error : errors)
    EXPECT_EQ(error.file, "test.yaml");
}

TEST(ConfigLoaderTest, LoadsFromFile) {
  char path[] = "/tmp/viscount_config_test_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << kListenerAndUpstream << "workers: 3\n";
  }
  const auto result = loadConfigFile(path);
  std::remove(path);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.config->workers, 3u);
  EXPECT_EQ(result.config->source_path, path);
}

TEST(ConfigLoaderTest, FileErrorsNameTheFile) {
  char path[] = "/tmp/viscount_config_test_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << kListenerAndUpstream << "workers: 0\n";
  }
  const auto result = loadConfigFile(path);
  std::remove(path);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].format(), std::string(path) +
                                           ":8:10: workers: expected auto or an integer from 1 "
                                           "to 256, got '0'");
}

TEST(ConfigLoaderTest, MissingFile) {
  const auto result = loadConfigFile("/nonexistent/viscount.yaml");
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].format(),
            "/nonexistent/viscount.yaml:0:0: cannot read: No such file or directory");
}

TEST(ConfigLoaderTest, DirectoryIsNotAFile) {
  const auto result = loadConfigFile("/tmp");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].format(), "/tmp:0:0: cannot read: Is a directory");
}

}  // namespace
}  // namespace viscount
