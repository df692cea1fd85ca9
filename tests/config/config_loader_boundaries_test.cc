// Loader errors at the proxy's edges: upgrades it carries, TLS, who is trusted, who may drive the
// admin listener, which client-identity headers viscount sets, what an upstream may answer, and
// Unix sockets.

#include <gtest/gtest.h>

#include <string>

#include "config/config_loader.h"
#include "tests/config/config_loader_test_support.h"

namespace viscount {
namespace {

using testing::errorOf;
using testing::errorsOf;
using testing::kListenerAndUpstream;
using testing::load;

TEST(ConfigLoaderTest, UpgradesDefaultToWebsocketAndOptInByName) {
  const auto defaults = load(kListenerAndUpstream);
  ASSERT_TRUE(defaults);
  const ListenerConfig& d = defaults->listeners[0];
  EXPECT_EQ(d.upgrades, std::vector<std::string>{"websocket"});
  EXPECT_EQ(d.timeouts.tunnel_idle, std::chrono::hours(1));
  EXPECT_EQ(d.limits.max_tunnels, 1000u);
  const auto config = load(R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    upgrades: [WebSocket, my-proto]
    timeouts: {tunnel_idle: 30s}
    limits: {max_tunnels: 5}
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)");
  ASSERT_TRUE(config);
  const ListenerConfig& l = config->listeners[0];
  EXPECT_EQ(l.upgrades, (std::vector<std::string>{"websocket", "my-proto"}));
  EXPECT_EQ(l.timeouts.tunnel_idle, std::chrono::seconds(30));
  EXPECT_EQ(l.limits.max_tunnels, 5u);
}

TEST(ConfigLoaderTest, H2cIsNeverAnUpgrade) {
  const std::string yaml = R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    upgrades: [websocket, H2C, "bad token"]
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)";
  const auto errors = errorsOf(yaml);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].format(),
            "test.yaml:4:27: listeners[0].upgrades[1]: h2c is never carried as an upgrade");
  EXPECT_EQ(errors[1].format(),
            "test.yaml:4:32: listeners[0].upgrades[2]: expected an Upgrade token such as "
            "websocket, got 'bad token'");
}

TEST(ConfigLoaderTest, Tls) {
  const auto config = load(R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    tls:
      certificate: /does/not/exist.crt
      private_key: /does/not/exist.key
upstreams:
  - name: app
    url: https://api.example.com
)");
  ASSERT_TRUE(config);
  ASSERT_TRUE(config->listeners[0].tls);
  EXPECT_EQ(config->listeners[0].tls->certificate, "/does/not/exist.crt");
  EXPECT_EQ(config->listeners[0].tls->private_key, "/does/not/exist.key");
  EXPECT_EQ(config->listeners[0].tls->client_ca, "");

  const auto errors = errorsOf(R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    tls:
      certificate: ""
  - name: second
    address: 127.0.0.1:0
    tls:
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)");
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].format(),
            "test.yaml:5:7: listeners[0].tls: missing required key "
            "'private_key'");
  EXPECT_EQ(errors[1].format(), "test.yaml:5:20: listeners[0].tls.certificate: must not be empty");
  EXPECT_EQ(errors[2].format(),
            "test.yaml:8:5: listeners[1].tls: missing required key "
            "'certificate'");
  EXPECT_EQ(errors[3].format(),
            "test.yaml:8:5: listeners[1].tls: missing required key "
            "'private_key'");
}

TEST(ConfigLoaderTest, TrustedSourcesMayBeEmpty) {
  EXPECT_TRUE(load(std::string(kListenerAndUpstream) + "context:\n  trusted_sources: []\n")
                  ->context.trusted_sources.empty());
  EXPECT_TRUE(load(std::string(kListenerAndUpstream) + "context:\n  trusted_sources:\n")
                  ->context.trusted_sources.empty());
  EXPECT_EQ(
      errorOf(std::string(kListenerAndUpstream) + "context:\n  trusted_sources: 10.0.0.0/8\n"),
      "test.yaml:9:20: context.trusted_sources: expected a list, got a value");
}

TEST(ConfigLoaderTest, AdminControlFrom) {
  const auto defaults = load(kListenerAndUpstream);
  ASSERT_EQ(defaults->admin.control_from.size(), 2u);
  EXPECT_EQ(defaults->admin.control_from[0].text(), "127.0.0.0/8");
  EXPECT_EQ(defaults->admin.control_from[1].text(), "::1/128");
  const auto set = load(std::string(kListenerAndUpstream) +
                        "admin:\n  address: 0.0.0.0:15000\n  control_from: [10.0.0.0/8]\n");
  ASSERT_EQ(set->admin.control_from.size(), 1u);
  EXPECT_EQ(set->admin.control_from[0].text(), "10.0.0.0/8");
  EXPECT_TRUE(load(std::string(kListenerAndUpstream) + "admin:\n  control_from: []\n")
                  ->admin.control_from.empty());
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "admin:\n  control_from: [pod]\n"),
            "test.yaml:9:18: admin.control_from[0]: expected a CIDR such as 10.0.0.0/8, ::1/128 "
            "or a single address, got 'pod'");
}

TEST(ConfigLoaderTest, ContextForwarded) {
  const auto defaults = load(kListenerAndUpstream);
  EXPECT_FALSE(defaults->context.forwarded.x_real_ip);
  EXPECT_FALSE(defaults->context.forwarded.forwarded);
  const auto both =
      load(std::string(kListenerAndUpstream) + "context:\n  forwarded: [x-real-ip, forwarded]\n");
  EXPECT_TRUE(both->context.forwarded.x_real_ip);
  EXPECT_TRUE(both->context.forwarded.forwarded);
  EXPECT_EQ(errorOf(std::string(kListenerAndUpstream) + "context:\n  forwarded: [x-client-ip]\n"),
            "test.yaml:9:15: context.forwarded[0]: expected x-real-ip or forwarded, got "
            "'x-client-ip'");
}

TEST(ConfigLoaderTest, UpstreamResponseBounds) {
  const auto defaults = load(kListenerAndUpstream);
  EXPECT_EQ(defaults->upstreams[0].limits.max_informational_responses, 10u);
  EXPECT_EQ(defaults->upstreams[0].limits.max_response_headers_count, 100u);
  const auto set = load(std::string(kListenerAndUpstream) +
                        "    limits: {max_informational_responses: 0, "
                        "max_response_headers_count: 300}\n");
  EXPECT_EQ(set->upstreams[0].limits.max_informational_responses, 0u);
  EXPECT_EQ(set->upstreams[0].limits.max_response_headers_count, 300u);
  EXPECT_FALSE(
      errorOf(std::string(kListenerAndUpstream) + "    limits: {max_response_headers_count: 0}\n")
          .empty());
}

TEST(ConfigLoaderTest, IdHeadersMayNotBeIdentityHeaders) {
  EXPECT_NE(
      errorOf(std::string(kListenerAndUpstream) + "context:\n  request_id: {header: x-real-ip}\n")
          .find("used by the proxy itself"),
      std::string::npos);
}

TEST(ConfigLoaderTest, UnixSocketListenersAndUpstreams) {
  const auto config = load(R"(listeners:
  - name: pod
    address: unix:/tmp/viscount-test.sock
    socket_mode: "0600"
    upstream: app
  - name: tcp
    address: 127.0.0.1:0
    upstream: app
upstreams:
  - name: app
    url: h2c+unix:/run/app/app.sock
context:
  trusted_sources: [unix, 10.0.0.0/8]
)");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->listeners[0].address.unix_path, "/tmp/viscount-test.sock");
  EXPECT_EQ(config->listeners[0].socket_mode, 0600u);
  EXPECT_EQ(config->listeners[1].socket_mode, kDefaultUnixSocketMode);
  EXPECT_EQ(config->upstreams[0].url.unix_path, "/run/app/app.sock");
  EXPECT_TRUE(config->context.trust_unix_clients);
  ASSERT_EQ(config->context.trusted_sources.size(), 1u);
  // Printed and loaded back, the socket mode and the "unix" source survive.
  const auto printed = loadConfigString(toYaml(*config), "printed.yaml");
  ASSERT_TRUE(printed.ok()) << toYaml(*config);
  EXPECT_EQ(printed.config->listeners[0].socket_mode, 0600u);
  EXPECT_TRUE(printed.config->context.trust_unix_clients);
  // Not listed: Unix clients are not trusted, whatever the CIDRs.
  EXPECT_FALSE(load(kListenerAndUpstream)->context.trust_unix_clients);
}

TEST(ConfigLoaderTest, UnixSocketMistakesPointAtTheValue) {
  EXPECT_EQ(errorOf(R"(listeners:
  - name: inbound
    address: unix:/no-such-directory-here/v.sock
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)"),
            "test.yaml:3:14: listeners[0].address: the directory /no-such-directory-here of the "
            "Unix socket does not exist (No such file or directory)");
  EXPECT_NE(errorOf(R"(listeners:
  - name: inbound
    address: 127.0.0.1:0
    socket_mode: "0600"
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)")
                .find("test.yaml:4:18: listeners[0].socket_mode: only a unix: address"),
            std::string::npos);
  EXPECT_NE(errorOf(R"(listeners:
  - name: inbound
    address: unix:/tmp/v.sock
    socket_mode: "0800"
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)")
                .find("invalid mode '0800'"),
            std::string::npos);
  EXPECT_NE(errorOf(R"(listeners:
  - name: a
    address: unix:/tmp/v.sock
  - name: b
    address: unix:/tmp/v.sock
upstreams:
  - name: app
    url: http://127.0.0.1:8000
)")
                .find("test.yaml:5:14: listeners[1].address: unix:/tmp/v.sock conflicts with"),
            std::string::npos);
  EXPECT_NE(errorOf(std::string(kListenerAndUpstream) + "admin:\n  address: unix:/tmp/a.sock\n")
                .find("admin endpoints listen on TCP only"),
            std::string::npos);
}

}  // namespace
}  // namespace viscount
