// What a loaded config holds: the contract's defaults, the contract's example, and the printed
// forms (--print-config YAML, admin JSON) that must load back to the same values.

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "config/config_loader.h"

namespace viscount {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// Copied verbatim from docs/reference.md.
constexpr const char* kContractExample =
    R"(workers: auto                      # event-loop threads; auto = number of cores
drain_timeout: 20s

listeners:
  - name: inbound
    address: 0.0.0.0:15006         # host:port; [::]:port for IPv6
    upstream: app                  # the upstream this listener fronts
    http2: true                    # accept h2 via ALPN (TLS) and h2c prior knowledge (cleartext)
    tls:                           # optional; absent = cleartext
      certificate: /etc/viscount/tls.crt
      private_key: /etc/viscount/tls.key
      client_ca: /etc/viscount/ca.crt   # optional: require and verify client certificates (mTLS)
    timeouts:
      request_headers: 10s         # whole-header deadline from first byte (slowloris) -> 408
      idle: 5m                     # idle client keep-alive connection
    limits:
      max_connections: 10000
      max_request_headers_size: 60KiB    # -> 431
      max_request_body_size: 10MiB       # -> 413 (0 = unlimited, streamed)

upstreams:
  - name: app
    url: http://127.0.0.1:8000     # http:// (HTTP/1.1), h2c:// (cleartext HTTP/2), https:// (TLS, ALPN h2 or http/1.1)
    timeouts:
      connect: 1s                  # -> 504
      request: 15s                 # from request start to last response byte -> 504
    pool:                          # the seed's SQLAlchemy pool knobs, per upstream
      size: 10                     # idle keep-alive connections kept (pool_size)
      max_overflow: 20             # extra connections allowed during bursts (max_overflow)
      wait_timeout: 30s            # a request waits this long for a connection, then 503 (pool_timeout)
      pre_ping: true               # check an idle connection is still open before reuse (pool_pre_ping)
      recycle: 1h                  # retire connections older than this (pool_recycle)
      idle_timeout: 30s            # close idle connections sooner than the upstream would
    limits:                        # batching limits: bounded in-flight work
      max_concurrent_requests: 100 # requests in flight to this upstream
      max_queued_requests: 1000    # waiting for a slot; beyond -> 503 with Retry-After
      queue_timeout: 5s            # waited this long for a slot -> 503
    retries:
      attempts: 1                  # extra attempts, only for idempotent requests that never reached the upstream

context:
  request_id:
    header: x-request-id
    preserve_incoming: true        # keep a well-formed id from a trusted source; otherwise generate
    generate: uuid4                # uuid4 | uuid7
  correlation_id:
    header: x-correlation-id       # kept when well-formed and trusted; otherwise set to a new id
  user_id:
    header: x-user-id              # forwarded only from trusted sources; stripped otherwise
  trace_context: true              # W3C traceparent/tracestate: continue a valid trace, else start one
  trusted_sources: [127.0.0.0/8, "::1/128"]   # CIDRs whose context headers are believed
  id_pattern: "^[A-Za-z0-9._:-]{1,128}$"     # incoming ids that do not match are replaced
  echo_in_response: true           # x-request-id and x-correlation-id on every response, error pages included

logging:
  access_log: stdout               # stdout | stderr | /path/to/file | off
  format: json                     # json | pretty (pretty = human colour lines, for a terminal)
  level: info                      # the proxy's own event log: trace|debug|info|warn|error
  buffer: 8192                     # queued lines; overflow drops and counts, never blocks a worker

admin:
  address: 127.0.0.1:15000         # GET /healthz /ready /metrics /config; POST /drain
)";

constexpr const char* kMinimal = R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)";

// Every setting away from its default, to prove each one survives printing and loading.
constexpr const char* kEverythingChanged = R"(workers: 3
drain_timeout: 1500ms
listeners:
  - name: public
    address: "[::]:8443"
    upstream: api
    http2: false
    tls:
      certificate: /certs/tls.crt
      private_key: /certs/tls.key
      client_ca: /certs/ca.crt
    timeouts:
      request_headers: 2s
      idle: 90s
    limits:
      max_connections: 7
      max_request_headers_size: 1000
      max_request_headers_count: 20
      max_request_body_size: 0
  - name: internal
    address: localhost:0
    upstream: auth
    limits:
      max_request_headers_size: 16KiB
      max_request_body_size: 1GiB
upstreams:
  - name: api
    url: h2c://api.internal:9000/
    timeouts: {connect: 250ms, request: 1h30m}
    pool: {size: 0, max_overflow: 1, wait_timeout: 0s, pre_ping: false, recycle: 2h,
           idle_timeout: 45s}
    limits: {max_concurrent_requests: 1, max_queued_requests: 0, queue_timeout: 100ms}
    retries: {attempts: 0}
  - name: auth
    url: https://[2001:db8::7]
    tls: {verify: false, ca_file: /ca/bundle.pem, server_name: auth.internal,
          certificate: /certs/client.crt, private_key: /certs/client.key}
context:
  request_id: {header: X-Req, preserve_incoming: false, generate: uuid7}
  correlation_id: {header: x-corr}
  user_id: {header: x-user, pattern: "^[a-z@.]+$"}
  trace_context: false
  trusted_sources: [10.1.2.3/8, "fd00::/8", 192.168.0.1]
  id_pattern: '^[^''"#: ]{1,64}$'
  echo_in_response: false
logging:
  access_log: "/var/log/my logs/access #1.log"
  format: pretty
  level: debug
  buffer: 17
  redact_query: [Session, otp]
  sample: {success: 0.25}
admin:
  address: "off"
)";

ConfigPtr load(const std::string& yaml, std::string_view name = "test.yaml") {
  const auto result = loadConfigString(yaml, name);
  for (const auto& error : result.errors)
    ADD_FAILURE() << error.format() << "\n" << yaml;
  return result.config;
}

// Loading what toYaml printed must give the same config (source_path aside: it names the text).
void expectRoundTrip(const Config& config) {
  const std::string printed = toYaml(config);
  const auto reloaded = load(printed, "printed.yaml");
  ASSERT_TRUE(reloaded) << printed;
  Config expected = config;
  expected.source_path = "printed.yaml";
  EXPECT_TRUE(*reloaded == expected) << printed << "\n---\n" << toYaml(*reloaded);
  EXPECT_EQ(toYaml(*reloaded), printed);
}

TEST(ConfigValuesTest, DefaultsMatchTheContract) {
  const auto config = load(kMinimal);
  ASSERT_TRUE(config);
  EXPECT_EQ(config->workers, 0u);  // auto
  EXPECT_EQ(config->drain_timeout, seconds(20));

  const auto& listener = config->listeners.at(0);
  EXPECT_EQ(listener.name, "inbound");
  EXPECT_EQ(listener.upstream, "app");
  EXPECT_TRUE(listener.http2);
  EXPECT_FALSE(listener.tls.has_value());
  EXPECT_EQ(listener.timeouts.request_headers, seconds(10));
  EXPECT_EQ(listener.timeouts.idle, minutes(5));
  EXPECT_EQ(listener.limits.max_connections, 10000u);
  EXPECT_EQ(listener.limits.max_request_headers_size, 60u * 1024);
  EXPECT_EQ(listener.limits.max_request_headers_count, 100u);
  EXPECT_EQ(listener.limits.max_request_body_size, 10u * 1024 * 1024);

  const auto& upstream = config->upstreams.at(0);
  EXPECT_EQ(upstream.timeouts.connect, seconds(1));
  EXPECT_EQ(upstream.timeouts.request, seconds(15));
  EXPECT_EQ(upstream.pool.size, 10u);
  EXPECT_EQ(upstream.pool.max_overflow, 20u);
  EXPECT_EQ(upstream.pool.wait_timeout, seconds(30));
  EXPECT_TRUE(upstream.pool.pre_ping);
  EXPECT_EQ(upstream.pool.recycle, hours(1));
  EXPECT_EQ(upstream.pool.idle_timeout, seconds(30));
  EXPECT_EQ(upstream.limits.max_concurrent_requests, 100u);
  EXPECT_EQ(upstream.limits.max_queued_requests, 1000u);
  EXPECT_EQ(upstream.limits.queue_timeout, seconds(5));
  EXPECT_EQ(upstream.retries.attempts, 1u);

  const auto& context = config->context;
  EXPECT_EQ(context.request_id.header, "x-request-id");
  EXPECT_TRUE(context.request_id.preserve_incoming);
  EXPECT_EQ(context.request_id.generate, IdFormat::kUuid4);
  EXPECT_EQ(context.correlation_id.header, "x-correlation-id");
  EXPECT_EQ(context.user_id.header, "x-user-id");
  EXPECT_EQ(context.user_id.pattern, "^[\\x21-\\x7E]{1,256}$");
  EXPECT_TRUE(context.trace_context);
  ASSERT_EQ(context.trusted_sources.size(), 2u);
  EXPECT_EQ(context.trusted_sources[0].text(), "127.0.0.0/8");
  EXPECT_EQ(context.trusted_sources[1].text(), "::1/128");
  EXPECT_EQ(context.id_pattern, "^[A-Za-z0-9._:-]{1,128}$");
  EXPECT_TRUE(context.echo_in_response);

  EXPECT_EQ(config->logging.access_log, "stdout");
  EXPECT_EQ(config->logging.format, LogFormat::kJson);
  EXPECT_EQ(config->logging.level, LogLevel::kInfo);
  EXPECT_EQ(config->logging.buffer, 8192u);
  EXPECT_EQ(config->logging.redact_query.size(), 12u);
  EXPECT_EQ(config->logging.redact_query.front(), "token");
  EXPECT_EQ(config->logging.sample_success, 1.0);

  ASSERT_TRUE(config->admin.address.has_value());
  EXPECT_EQ(config->admin.address->text(), "127.0.0.1:15000");
}

TEST(ConfigValuesTest, LoggingPolicyKeys) {
  const auto config = load(std::string(kMinimal) +
                           "logging:\n  redact_query: [Session, OTP]\n  sample: {success: 0.1}\n");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->logging.redact_query, (std::vector<std::string>{"session", "otp"}));
  EXPECT_DOUBLE_EQ(config->logging.sample_success, 0.1);
  const auto off =
      load(std::string(kMinimal) + "logging: {redact_query: [], sample: {success: 0}}\n");
  ASSERT_TRUE(off);
  EXPECT_TRUE(off->logging.redact_query.empty());
  EXPECT_EQ(off->logging.sample_success, 0.0);

  for (const char* bad : {"1.5", "-0.1", "nan", "0x1p-3", "lots", "1e-2"}) {
    const auto result = loadConfigString(
        std::string(kMinimal) + "logging:\n  sample: {success: " + bad + "}\n", "test.yaml");
    ASSERT_EQ(result.errors.size(), 1u) << bad;
    EXPECT_EQ(
        result.errors[0].format(),
        std::string("test.yaml:8:21: logging.sample.success: expected a fraction from 0 to 1, "
                    "got '") +
            bad + "'");
  }
  const auto listed =
      loadConfigString(std::string(kMinimal) + "logging:\n  redact_query: [a, [b]]\n", "test.yaml");
  ASSERT_EQ(listed.errors.size(), 1u);
  EXPECT_EQ(listed.errors[0].format(),
            "test.yaml:8:21: logging.redact_query[1]: expected a query parameter name");
}

TEST(ConfigValuesTest, LoggedHeadersRefuseCredentialsAndTheIdHeaders) {
  const auto config = load(std::string(kMinimal) +
                           "logging:\n  headers: {request: [User-Agent, x-tenant], "
                           "response: [content-type]}\n");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->logging.request_headers, (std::vector<std::string>{"user-agent", "x-tenant"}));
  EXPECT_EQ(config->logging.response_headers, (std::vector<std::string>{"content-type"}));
  expectRoundTrip(*config);

  const auto refused = loadConfigString(
      std::string(kMinimal) +
          "logging:\n  headers:\n    request: [Authorization, x-request-id, \"bad name\", a, a]\n"
          "    response: [set-cookie]\n",
      "test.yaml");
  std::vector<std::string> errors;
  for (const auto& e : refused.errors)
    errors.push_back(e.format());
  EXPECT_EQ(errors,
            (std::vector<std::string>{
                "test.yaml:9:15: logging.headers.request[0]: 'authorization' carries credentials; "
                "set logging.allow_sensitive_headers: true to log it anyway",
                "test.yaml:9:30: logging.headers.request[1]: 'x-request-id' is already in every "
                "line as request_id",
                "test.yaml:9:44: logging.headers.request[2]: expected a header name",
                "test.yaml:9:59: logging.headers.request[4]: 'a' is listed twice",
                "test.yaml:10:16: logging.headers.response[0]: 'set-cookie' carries credentials; "
                "set logging.allow_sensitive_headers: true to log it anyway"}));

  const auto allowed = load(std::string(kMinimal) +
                            "logging:\n  allow_sensitive_headers: true\n"
                            "  headers: {request: [authorization, cookie]}\n");
  ASSERT_TRUE(allowed);
  EXPECT_EQ(allowed->logging.request_headers,
            (std::vector<std::string>{"authorization", "cookie"}));
}

TEST(ConfigValuesTest, EmptySectionsMeanDefaults) {
  const auto config = load(std::string(kMinimal) + "context:\nlogging:\nadmin:\n");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->context, ContextConfig{});
  EXPECT_EQ(config->logging, LoggingConfig{});
  EXPECT_EQ(config->admin, AdminConfig{});
}

TEST(ConfigValuesTest, ContractExampleLoadsWithEveryValue) {
  const auto config = load(kContractExample, "contract.yaml");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->source_path, "contract.yaml");
  EXPECT_EQ(config->workers, 0u);
  EXPECT_EQ(config->drain_timeout, seconds(20));

  ASSERT_EQ(config->listeners.size(), 1u);
  const auto& listener = config->listeners[0];
  EXPECT_EQ(listener.name, "inbound");
  EXPECT_EQ(listener.address.host, "0.0.0.0");
  EXPECT_EQ(listener.address.port, 15006);
  EXPECT_EQ(listener.upstream, "app");
  EXPECT_TRUE(listener.http2);
  ASSERT_TRUE(listener.tls.has_value());
  EXPECT_EQ(listener.tls->certificate, "/etc/viscount/tls.crt");
  EXPECT_EQ(listener.tls->private_key, "/etc/viscount/tls.key");
  EXPECT_EQ(listener.tls->client_ca, "/etc/viscount/ca.crt");
  EXPECT_EQ(listener.timeouts.request_headers, seconds(10));
  EXPECT_EQ(listener.timeouts.idle, minutes(5));
  EXPECT_EQ(listener.limits.max_connections, 10000u);
  EXPECT_EQ(listener.limits.max_request_headers_size, 61440u);
  EXPECT_EQ(listener.limits.max_request_body_size, 10485760u);

  ASSERT_EQ(config->upstreams.size(), 1u);
  const auto& upstream = config->upstreams[0];
  EXPECT_EQ(upstream.name, "app");
  EXPECT_EQ(upstream.url.scheme, UpstreamScheme::kHttp);
  EXPECT_EQ(upstream.url.host, "127.0.0.1");
  EXPECT_EQ(upstream.url.port, 8000);
  EXPECT_EQ(upstream.url.text, "http://127.0.0.1:8000");
  EXPECT_EQ(upstream.timeouts.connect, seconds(1));
  EXPECT_EQ(upstream.timeouts.request, seconds(15));
  EXPECT_EQ(upstream.pool.size, 10u);
  EXPECT_EQ(upstream.pool.max_overflow, 20u);
  EXPECT_EQ(upstream.pool.wait_timeout, seconds(30));
  EXPECT_TRUE(upstream.pool.pre_ping);
  EXPECT_EQ(upstream.pool.recycle, hours(1));
  EXPECT_EQ(upstream.pool.idle_timeout, seconds(30));
  EXPECT_EQ(upstream.limits.max_concurrent_requests, 100u);
  EXPECT_EQ(upstream.limits.max_queued_requests, 1000u);
  EXPECT_EQ(upstream.limits.queue_timeout, seconds(5));
  EXPECT_EQ(upstream.retries.attempts, 1u);
  EXPECT_EQ(config->findUpstream("app"), &upstream);

  const auto& context = config->context;
  EXPECT_EQ(context.request_id.header, "x-request-id");
  EXPECT_TRUE(context.request_id.preserve_incoming);
  EXPECT_EQ(context.request_id.generate, IdFormat::kUuid4);
  EXPECT_EQ(context.correlation_id.header, "x-correlation-id");
  EXPECT_EQ(context.user_id.header, "x-user-id");
  EXPECT_TRUE(context.trace_context);
  ASSERT_EQ(context.trusted_sources.size(), 2u);
  EXPECT_EQ(context.trusted_sources[0].text(), "127.0.0.0/8");
  EXPECT_EQ(context.trusted_sources[1].text(), "::1/128");
  EXPECT_EQ(context.id_pattern, "^[A-Za-z0-9._:-]{1,128}$");
  EXPECT_TRUE(context.echo_in_response);

  EXPECT_EQ(config->logging.access_log, "stdout");
  EXPECT_EQ(config->logging.format, LogFormat::kJson);
  EXPECT_EQ(config->logging.level, LogLevel::kInfo);
  EXPECT_EQ(config->logging.buffer, 8192u);
  ASSERT_TRUE(config->admin.address.has_value());
  EXPECT_EQ(config->admin.address->host, "127.0.0.1");
  EXPECT_EQ(config->admin.address->port, 15000);
}

TEST(ConfigValuesTest, NonDefaultValuesLand) {
  const auto config = load(kEverythingChanged);
  ASSERT_TRUE(config);
  EXPECT_EQ(config->workers, 3u);
  EXPECT_EQ(config->effectiveWorkers(), 3u);
  EXPECT_EQ(config->drain_timeout, milliseconds(1500));
  const auto& pub = config->listeners.at(0);
  EXPECT_EQ(pub.address.text(), "[::]:8443");
  EXPECT_FALSE(pub.http2);
  EXPECT_EQ(pub.limits.max_request_body_size, 0u);
  EXPECT_EQ(pub.limits.max_request_headers_size, 1000u);
  EXPECT_EQ(pub.limits.max_request_headers_count, 20u);
  EXPECT_EQ(config->listeners.at(1).address.text(), "127.0.0.1:0");
  EXPECT_EQ(config->listeners.at(1).limits.max_request_body_size, 1ull << 30);
  const auto& api = config->upstreams.at(0);
  EXPECT_EQ(api.url.scheme, UpstreamScheme::kH2c);
  EXPECT_EQ(api.url.text, "h2c://api.internal:9000");
  EXPECT_EQ(api.timeouts.request, minutes(90));
  EXPECT_EQ(api.pool.size, 0u);
  EXPECT_FALSE(api.pool.pre_ping);
  EXPECT_EQ(api.retries.attempts, 0u);
  const auto& auth = config->upstreams.at(1);
  EXPECT_EQ(auth.url.scheme, UpstreamScheme::kHttps);
  EXPECT_EQ(auth.url.host, "2001:db8::7");
  EXPECT_EQ(auth.url.port, 443);
  EXPECT_EQ(config->context.request_id.header, "x-req");
  EXPECT_EQ(config->context.request_id.generate, IdFormat::kUuid7);
  ASSERT_EQ(config->context.trusted_sources.size(), 3u);
  EXPECT_EQ(config->context.trusted_sources[0].text(), "10.0.0.0/8");
  EXPECT_EQ(config->context.trusted_sources[2].text(), "192.168.0.1/32");
  EXPECT_EQ(config->context.id_pattern, "^[^'\"#: ]{1,64}$");
  EXPECT_EQ(config->logging.access_log, "/var/log/my logs/access #1.log");
  EXPECT_EQ(config->logging.format, LogFormat::kPretty);
  EXPECT_EQ(config->logging.level, LogLevel::kDebug);
  EXPECT_EQ(config->logging.buffer, 17u);
  EXPECT_EQ(config->logging.redact_query, (std::vector<std::string>{"session", "otp"}));
  EXPECT_DOUBLE_EQ(config->logging.sample_success, 0.25);
  EXPECT_FALSE(config->admin.address.has_value());
  EXPECT_EQ(config->findUpstream("auth"), &auth);
  EXPECT_EQ(config->findUpstream("nope"), nullptr);
}

TEST(ConfigValuesTest, YamlRoundTripsTheContractExample) {
  const auto config = load(kContractExample);
  ASSERT_TRUE(config);
  expectRoundTrip(*config);
}

TEST(ConfigValuesTest, YamlRoundTripsEveryNonDefault) {
  const auto config = load(kEverythingChanged);
  ASSERT_TRUE(config);
  expectRoundTrip(*config);
}

TEST(ConfigValuesTest, YamlRoundTripsEmptyTrustedSources) {
  const auto config = load(std::string(kMinimal) + "context: {trusted_sources: []}\n");
  ASSERT_TRUE(config);
  expectRoundTrip(*config);
}

TEST(ConfigValuesTest, PrintedYamlFillsEveryDefault) {
  const auto config = load(kMinimal);
  ASSERT_TRUE(config);
  const std::string printed = toYaml(*config);
  for (const char* line : {"workers: auto\n",
                           "drain_timeout: 20s\n",
                           "    upstream: app\n",
                           "    http2: true\n",
                           "      request_headers: 10s\n",
                           "      idle: 5m\n",
                           "      max_connections: 10000\n",
                           "      max_request_headers_size: 60KiB\n",
                           "      max_request_headers_count: 100\n",
                           "      max_request_body_size: 10MiB\n",
                           "    url: http://127.0.0.1:8000\n",
                           "      recycle: 1h\n",
                           "      pre_ping: true\n",
                           "      max_queued_requests: 1000\n",
                           "      attempts: 1\n",
                           "    generate: uuid4\n",
                           "  trace_context: true\n",
                           "  echo_in_response: true\n",
                           "  access_log: stdout\n",
                           "  format: json\n",
                           "  level: info\n",
                           "  buffer: 8192\n",
                           "  address: 127.0.0.1:15000\n"}) {
    EXPECT_NE(printed.find(line), std::string::npos) << "missing " << line << "in:\n" << printed;
  }
  EXPECT_EQ(printed.find("tls"), std::string::npos);
}

TEST(ConfigValuesTest, ZeroConfig) {
  const auto result = makeZeroConfig("http://127.0.0.1:8000", "");
  ASSERT_TRUE(result.ok());
  const Config& config = *result.config;
  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].name, "inbound");
  EXPECT_EQ(config.listeners[0].address.text(), "127.0.0.1:8080");
  EXPECT_EQ(config.listeners[0].upstream, "app");
  ASSERT_EQ(config.upstreams.size(), 1u);
  EXPECT_EQ(config.upstreams[0].name, "app");
  EXPECT_EQ(config.upstreams[0].url.text, "http://127.0.0.1:8000");
  EXPECT_TRUE(config.source_path.empty());

  // Apart from the listener and upstream, it is exactly the defaults of a config file.
  const auto file = load(R"(listeners:
  - name: inbound
    address: 127.0.0.1:8080
    upstream: app
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)",
                         "");
  ASSERT_TRUE(file);
  EXPECT_TRUE(config == *file) << toYaml(config) << "\n---\n" << toYaml(*file);
}

TEST(ConfigValuesTest, ZeroConfigWithListenAddress) {
  const auto result = makeZeroConfig("h2c://[::1]:9000", "[::]:18080");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.config->listeners[0].address.text(), "[::]:18080");
  EXPECT_EQ(result.config->upstreams[0].url.scheme, UpstreamScheme::kH2c);
  expectRoundTrip(*result.config);
}

TEST(ConfigValuesTest, ZeroConfigPrints) {
  const auto result = makeZeroConfig("http://127.0.0.1:8000", "");
  ASSERT_TRUE(result.ok());
  const std::string printed = toYaml(*result.config);
  EXPECT_EQ(printed.rfind("workers: auto\ndrain_timeout: 20s\nwatch_config: true\nio_uring: true\n"
                          "listeners:\n"
                          "  - name: inbound\n"
                          "    address: 127.0.0.1:8080\n    upstream: app\n",
                          0),
            0u)
      << printed;
  EXPECT_NE(printed.find("upstreams:\n  - name: app\n    url: http://127.0.0.1:8000\n"),
            std::string::npos)
      << printed;
  expectRoundTrip(*result.config);
}

TEST(ConfigValuesTest, ZeroConfigErrorsNameTheFlag) {
  auto result = makeZeroConfig("127.0.0.1:8000", "");
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].format(),
            "--upstream:0:0: invalid upstream URL '127.0.0.1:8000': missing scheme: expected "
            "http://, h2c://, https://, unix:/path or h2c+unix:/path, e.g. http://127.0.0.1:8000");

  result = makeZeroConfig("ftp://x", "nowhere");
  ASSERT_EQ(result.errors.size(), 2u);
  EXPECT_EQ(result.errors[0].file, "--upstream");
  EXPECT_EQ(result.errors[1].file, "--listen");
  EXPECT_EQ(result.errors[1].line, 0);

  result = makeZeroConfig("http://127.0.0.1:8000", "localhost:15000");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].format(),
            "--listen:0:0: 127.0.0.1:15000 is the admin address; choose another port");
}

TEST(ConfigValuesTest, JsonHasTheSchemaKeys) {
  const auto config = load(kContractExample);
  ASSERT_TRUE(config);
  const nlohmann::json json = toJson(*config);
  for (const char* key :
       {"workers", "drain_timeout", "listeners", "upstreams", "context", "logging", "admin"}) {
    EXPECT_TRUE(json.contains(key)) << key;
  }
  EXPECT_EQ(json["workers"], "auto");
  EXPECT_EQ(json["drain_timeout"], "20s");
  const auto& listener = json["listeners"].at(0);
  EXPECT_EQ(listener["name"], "inbound");
  EXPECT_EQ(listener["address"], "0.0.0.0:15006");
  EXPECT_EQ(listener["upstream"], "app");
  EXPECT_EQ(listener["http2"], true);
  EXPECT_EQ(listener["tls"]["client_ca"], "/etc/viscount/ca.crt");
  EXPECT_EQ(listener["timeouts"]["idle"], "5m");
  // Sizes are byte counts in JSON, for tools; the YAML keeps the units people write.
  EXPECT_EQ(listener["limits"]["max_request_headers_size"], 61440);
  EXPECT_EQ(listener["limits"]["max_request_headers_count"], 100);
  EXPECT_EQ(listener["limits"]["max_request_body_size"], 10485760);
  EXPECT_EQ(listener["limits"]["max_connections"], 10000);
  const auto& upstream = json["upstreams"].at(0);
  EXPECT_EQ(upstream["url"], "http://127.0.0.1:8000");
  EXPECT_EQ(upstream["pool"]["size"], 10);
  EXPECT_EQ(upstream["pool"]["pre_ping"], true);
  EXPECT_EQ(upstream["pool"]["recycle"], "1h");
  EXPECT_EQ(upstream["limits"]["queue_timeout"], "5s");
  EXPECT_EQ(upstream["retries"]["attempts"], 1);
  EXPECT_EQ(json["context"]["request_id"]["generate"], "uuid4");
  EXPECT_EQ(json["context"]["trusted_sources"], nlohmann::json::array({"127.0.0.0/8", "::1/128"}));
  EXPECT_EQ(json["context"]["user_id"]["pattern"], "^[\\x21-\\x7E]{1,256}$");
  EXPECT_EQ(json["logging"]["format"], "json");
  EXPECT_EQ(json["logging"]["buffer"], 8192);
  EXPECT_EQ(json["admin"]["address"], "127.0.0.1:15000");
}

TEST(ConfigValuesTest, JsonOfNonDefaults) {
  const auto config = load(kEverythingChanged);
  ASSERT_TRUE(config);
  const nlohmann::json json = toJson(*config);
  EXPECT_EQ(json["workers"], 3);
  EXPECT_EQ(json["admin"]["address"], "off");
  EXPECT_EQ(json["listeners"][0]["address"], "[::]:8443");
  EXPECT_FALSE(json["listeners"][1].contains("tls"));
  EXPECT_EQ(json["upstreams"][1]["url"], "https://[2001:db8::7]");
  EXPECT_EQ(json["logging"]["level"], "debug");
  EXPECT_EQ(json["context"]["request_id"]["header"], "x-req");
}

TEST(ConfigValuesTest, JsonTextRendersBytesThatAreNotUtf8) {
  // The loader refuses such text, but a Config can be made otherwise (zero-config mode from the
  // command line). The admin /config endpoint rendered it with a strict JSON dump, which threw
  // and ended the process.
  Config config;
  config.logging.access_log = "/var/log/\xff\xfe.log";
  UpstreamConfig upstream;
  upstream.name = "app";
  upstream.tls.server_name = "a\xc3(b";
  upstream.url.scheme = UpstreamScheme::kHttps;
  config.upstreams.push_back(upstream);
  std::string text;
  ASSERT_NO_THROW(text = toJsonText(config));
  const nlohmann::json json = nlohmann::json::parse(text);
  EXPECT_EQ(json["logging"]["access_log"], "/var/log/\uFFFD\uFFFD.log");
  EXPECT_EQ(json["upstreams"][0]["tls"]["server_name"], "a\uFFFD(b");
  EXPECT_EQ(text.back(), '\n');
}

TEST(ConfigValuesTest, EffectiveWorkersResolvesAuto) {
  Config config;
  config.workers = 0;
  const uint32_t workers = config.effectiveWorkers();
  EXPECT_GE(workers, 1u);
  EXPECT_LE(workers, 256u);
  if (std::thread::hardware_concurrency() > 0) {
    EXPECT_LE(workers, std::thread::hardware_concurrency());
  }
  config.workers = 7;
  EXPECT_EQ(config.effectiveWorkers(), 7u);
}

TEST(ConfigValuesTest, SocketAddressText) {
  EXPECT_EQ((SocketAddress{"10.0.0.1", 80}).text(), "10.0.0.1:80");
  EXPECT_EQ((SocketAddress{"::", 0}).text(), "[::]:0");
  EXPECT_EQ((SocketAddress{"fe80::1", 443}).text(), "[fe80::1]:443");
}

TEST(ConfigValuesTest, EnumNames) {
  EXPECT_STREQ(toString(UpstreamScheme::kHttp), "http");
  EXPECT_STREQ(toString(UpstreamScheme::kH2c), "h2c");
  EXPECT_STREQ(toString(UpstreamScheme::kHttps), "https");
  EXPECT_STREQ(toString(IdFormat::kUuid4), "uuid4");
  EXPECT_STREQ(toString(IdFormat::kUuid7), "uuid7");
  EXPECT_STREQ(toString(LogFormat::kJson), "json");
  EXPECT_STREQ(toString(LogFormat::kPretty), "pretty");
  EXPECT_STREQ(toString(LogLevel::kTrace), "trace");
  EXPECT_STREQ(toString(LogLevel::kDebug), "debug");
  EXPECT_STREQ(toString(LogLevel::kInfo), "info");
  EXPECT_STREQ(toString(LogLevel::kWarn), "warn");
  EXPECT_STREQ(toString(LogLevel::kError), "error");
}

}  // namespace
}  // namespace viscount
