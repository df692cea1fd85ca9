#pragma once

// The main thread: binds listeners (one SO_REUSEPORT socket per worker, or one Unix socket file
// shared by them; the file is removed at drain and exit), starts the workers,
// serves the admin endpoints, and turns signals into drain (SIGTERM/SIGINT) and reload (SIGHUP, or
// the config file changing on disk).
// Tests run a Server in-process and drive it through the same request* calls.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/net/event_loop.h"
#include "proxy/net/socket.h"
#include "proxy/server/admin_server.h"
#include "proxy/server/config_watcher.h"
#include "proxy/server/worker.h"

struct event;

namespace viscount {

class AccessLog;
class EventLog;
class Metrics;

struct ServerOptions {
  bool handle_signals = true;  // the binary; tests use requestDrain() and friends
  int event_log_fd = 2;
  // Overrides logging.access_log (tests capture to a file they choose); empty = config's.
  std::string access_log_override;
};

class Server {
 public:
  explicit Server(ConfigPtr config, ServerOptions options = {});
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Settings the config accepts but this build cannot serve yet; empty when all is supported.
  static std::vector<std::string> unsupportedSettings(const Config& config);

  // Binds every listener and the admin address and starts the workers. On failure returns
  // false with `error` set (the binary exits 2).
  bool start(std::string* error);
  // Runs the main loop until drained or stopped; returns the process exit code.
  int run();

  // Thread-safe controls.
  void requestDrain();   // SIGTERM
  void requestReload();  // SIGHUP
  void requestStop();    // immediate shutdown

  // After start().
  uint16_t listenerPort(size_t index) const { return listener_ports_.at(index); }
  uint16_t adminPort() const { return admin_ ? admin_->port() : 0; }
  bool ready() const { return ready_.load(); }
  size_t workerCount() const { return workers_.size(); }
  ConfigPtr currentConfig() const;
  EventLog& events() { return *events_; }
  AccessLog& accessLog() { return *access_log_; }
  Metrics& metrics() { return *metrics_; }
  uint64_t reloadCount() const { return reloads_.load(); }

 private:
  AdminResponse handleAdmin(std::string_view method, std::string_view path,
                            const sockaddr_storage& peer);
  void startDrain(std::string_view reason);
  void reload();
  // SIGUSR1: the access-log file is reopened at its path (after logrotate moved it).
  void reopenLogs();
  // Reloads when the file changes (config `watch_config`); a failure to watch is only logged.
  void watchConfigFile(const std::string& path);
  void finish();
  // Binds listener `index` (a unix: address) once and gives every worker a descriptor of it.
  bool bindUnixListener(size_t index, std::string* error);
  // Unlinks the socket files this process created (if still its own); idempotent.
  void removeUnixSockets();
  // Resolves upstreams and compiles the context filter, once for all workers; nullptr and
  // `error` when the config cannot run.
  ConfigRuntimePtr prepareConfig(const ConfigPtr& config, std::string* error);
  static void onSignal(int sig, short, void* arg);
  static void onDrainTimeout(void* arg);

  ServerOptions options_;
  mutable std::mutex config_mutex_;
  ConfigPtr config_;

  EventLoop loop_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<AccessLog> access_log_;
  std::unique_ptr<Metrics> metrics_;
  std::vector<std::unique_ptr<std::atomic<int64_t>>> listener_connections_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::map<std::string, UpstreamSharedLimits> shared_limits_;  // by upstream name; main thread
  std::map<std::string, std::shared_ptr<SharedLimit>> tunnel_limits_;  // by listener name
  std::vector<uint16_t> listener_ports_;                               // 0 for a Unix listener
  std::vector<UnixSocketFile> unix_sockets_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<ConfigWatcher> config_watcher_;
  std::vector<event*> signal_events_;
  Timer drain_timer_;

  std::atomic<bool> ready_{false};
  std::atomic<uint64_t> reloads_{0};
  bool draining_ = false;
  bool drain_expired_ = false;  // drain_timeout passed; the timer now runs the grace period
  bool finished_ = false;
  size_t workers_draining_ = 0;
  int exit_code_ = 0;
};

}  // namespace viscount
