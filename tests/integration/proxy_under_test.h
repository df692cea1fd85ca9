#pragma once

// Runs a real viscount Server in-process (real workers, real sockets on 127.0.0.1:0) with the
// access log and event log captured to files in a private temp directory.

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "proxy/server/server.h"

namespace viscount::test {

// A config with one listener on 127.0.0.1:0 fronting one upstream "app" at
// 127.0.0.1:`upstream_port`, `workers` workers and the admin listener on 127.0.0.1:0.
// `upstream_lines` go under the upstream (indented four spaces), `top_lines` at the top level.
std::string singleUpstreamConfig(uint16_t upstream_port, int workers,
                                 const std::string& upstream_lines = "",
                                 const std::string& top_lines = "");
// A standard two-worker config fronting 127.0.0.1:`upstream_port`; listener and admin on port 0.
std::string defaultConfig(uint16_t upstream_port);
// Replaces every "{port}" in `yaml` with the upstream port.
std::string withPort(std::string yaml, uint16_t upstream_port);
// Writes `text` to a temporary file beside `path` and renames it over `path`, as editors and
// config management tools do: a reader sees the old content or the new, never half of it.
void writeFileAtomically(const std::string& path, const std::string& text);

// How the config file sits on disk.
enum class ConfigLayout {
  kPlainFile,        // <dir>/viscount.yaml
  kConfigMapVolume,  // as kubelet mounts a ConfigMap: viscount.yaml -> ..data/viscount.yaml,
                     // ..data -> ..<version>/, and an update swaps ..data in one rename
};

class ProxyUnderTest {
 public:
  explicit ProxyUnderTest(const std::string& yaml, ConfigLayout layout = ConfigLayout::kPlainFile);
  ProxyUnderTest(const ProxyUnderTest&) = delete;
  ProxyUnderTest& operator=(const ProxyUnderTest&) = delete;
  ~ProxyUnderTest();

  uint16_t port(size_t listener = 0) const { return server_->listenerPort(listener); }
  uint16_t adminPort() const { return server_->adminPort(); }

  // Waits (up to `timeout`) until the access log holds at least `count` lines, then until no new
  // line has arrived for a settle period; returns every line parsed, so a line written after the
  // expected ones (a duplicate) is there to count. A line that is not valid JSON fails the test.
  std::vector<nlohmann::json> accessLog(
      size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  std::string accessLogText() const;
  std::string eventLogText() const;

  // The config file the server loaded (in the private temp directory); reloads read it again.
  const std::string& configPath() const { return config_path_; }
  void reload() { server_->requestReload(); }
  // Replaces the config on disk the way its layout is updated in real life (an atomic rename
  // of the file, or kubelet's swap of the ..data link); nothing is signalled.
  void updateConfig(const std::string& yaml);
  uint64_t reloadCount() const { return server_->reloadCount(); }
  Server& server() { return *server_; }

  void drain() { server_->requestDrain(); }
  // Waits for the server to stop; returns its exit code.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Like wait(), but returns nullopt (and leaves the server running) when it has not stopped
  // within `timeout`.
  std::optional<int> waitFor(std::chrono::milliseconds timeout);

 private:
  std::string dir_;
  std::string access_log_path_;
  std::string event_log_path_;
  std::string config_path_;
  ConfigLayout layout_;
  int config_version_ = 0;
  int event_fd_ = -1;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int exit_code_ = -1;
  bool stopped_ = false;
  std::atomic<bool> run_returned_{false};
};

}  // namespace viscount::test
