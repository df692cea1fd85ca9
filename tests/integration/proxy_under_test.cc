#include "tests/integration/proxy_under_test.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "config/config_loader.h"
#include "telemetry/event_log.h"
#include "tests/test_timing.h"

namespace viscount::test {

std::string withPort(std::string yaml, uint16_t upstream_port) {
  const std::string p = std::to_string(upstream_port);
  for (size_t at = yaml.find("{port}"); at != std::string::npos; at = yaml.find("{port}", at)) {
    yaml.replace(at, 6, p);
  }
  return yaml;
}

std::string singleUpstreamConfig(uint16_t upstream_port, int workers,
                                 const std::string& upstream_lines, const std::string& top_lines) {
  return withPort("workers: " + std::to_string(workers) + R"(
listeners:
  - name: inbound
    address: 127.0.0.1:0
    upstream: app
upstreams:
  - name: app
    url: http://127.0.0.1:{port}
)" + upstream_lines + R"(admin:
  address: 127.0.0.1:0
)" + top_lines,
                  upstream_port);
}

std::string defaultConfig(uint16_t upstream_port) {
  return singleUpstreamConfig(upstream_port, 2, "",
                              "drain_timeout: 5s\nlogging:\n  level: debug\n");
}

ProxyUnderTest::ProxyUnderTest(const std::string& yaml, ConfigLayout layout) : layout_(layout) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "viscount-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  access_log_path_ = dir_ + "/access.log";
  event_log_path_ = dir_ + "/events.log";
  event_fd_ = ::open(event_log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

  // From a file, as the binary loads it, so reloads (SIGHUP or a change on disk) work too.
  config_path_ = dir_ + "/viscount.yaml";
  updateConfig(yaml);
  if (layout_ == ConfigLayout::kConfigMapVolume) {
    std::filesystem::create_symlink("..data/viscount.yaml", config_path_);
  }
  ConfigLoadResult loaded = loadConfigFile(config_path_);
  if (!loaded.ok()) {
    std::string all;
    for (const auto& e : loaded.errors)
      all += e.format() + "\n";
    throw std::runtime_error("test config invalid:\n" + all);
  }
  ServerOptions options;
  options.handle_signals = false;
  options.event_log_fd = event_fd_;
  options.access_log_override = access_log_path_;
  server_ = std::make_unique<Server>(loaded.config, options);
  std::string error;
  if (!server_->start(&error)) throw std::runtime_error("server failed to start: " + error);
  thread_ = std::thread([this] {
    exit_code_ = server_->run();
    run_returned_ = true;
  });
}

ProxyUnderTest::~ProxyUnderTest() {
  if (!stopped_) {
    server_->requestStop();
    wait();
  }
  server_.reset();
  if (event_fd_ >= 0) ::close(event_fd_);
  std::error_code ec;
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir_, ec);
}

int ProxyUnderTest::wait(std::chrono::milliseconds timeout) {
  if (stopped_) return exit_code_;
  // Join in a helper so a hung server fails the test instead of hanging the suite.
  auto joined = std::async(std::launch::async, [this] { thread_.join(); });
  if (joined.wait_for(timeout) != std::future_status::ready) {
    ADD_FAILURE() << "server did not stop within " << timeout.count() << " ms";
    std::abort();
  }
  stopped_ = true;
  return exit_code_;
}

std::optional<int> ProxyUnderTest::waitFor(std::chrono::milliseconds timeout) {
  if (stopped_) return exit_code_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!run_returned_.load()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return wait();
}

namespace {
std::string readWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

void writeFileAtomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw std::runtime_error("cannot write " + temporary);
  }
  std::filesystem::rename(temporary, path);
}

void ProxyUnderTest::updateConfig(const std::string& yaml) {
  namespace fs = std::filesystem;
  if (layout_ == ConfigLayout::kPlainFile) {
    writeFileAtomically(config_path_, yaml);
    return;
  }
  // kubelet's order: a new versioned directory with the files, a temporary link to it renamed
  // over ..data, then the old version removed.
  const std::string version = "..v" + std::to_string(++config_version_);
  fs::create_directory(dir_ + "/" + version);
  writeFileAtomically(dir_ + "/" + version + "/viscount.yaml", yaml);
  std::error_code ec;
  const fs::path old_version = fs::read_symlink(dir_ + "/..data", ec);
  fs::create_directory_symlink(version, dir_ + "/..data_tmp");
  fs::rename(dir_ + "/..data_tmp", dir_ + "/..data");
  if (!ec) fs::remove_all(fs::path(dir_) / old_version);
}

std::string ProxyUnderTest::accessLogText() const {
  return readWholeFile(access_log_path_);
}

std::string ProxyUnderTest::eventLogText() const {
  return readWholeFile(event_log_path_);
}

std::vector<nlohmann::json> ProxyUnderTest::accessLog(size_t count,
                                                      std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto lineCount = [](const std::string& t) {
    return static_cast<size_t>(std::count(t.begin(), t.end(), '\n'));
  };
  const auto deadline = Clock::now() + timeout;
  std::string text = accessLogText();
  while (lineCount(text) < count && Clock::now() <= deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    text = accessLogText();
  }
  // Reaching `count` says nothing about what comes after: a duplicate line, written by a later
  // loop turn or another worker, lands after the expected ones. So wait until the log stops
  // growing for a settle period and return all of it; a test expecting exactly N lines then sees
  // an N+1st. The cap keeps a log that never stops growing from hanging the test.
  if (lineCount(text) >= count) {
    const auto settle = slowScaled(std::chrono::milliseconds(250));
    const auto cap = Clock::now() + 20 * settle;
    size_t seen = lineCount(text);
    auto stable_since = Clock::now();
    while (Clock::now() - stable_since < settle && Clock::now() < cap) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      text = accessLogText();
      if (lineCount(text) != seen) {
        seen = lineCount(text);
        stable_since = Clock::now();
      }
    }
  }
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const std::exception& e) {
      ADD_FAILURE() << "access log line is not JSON: " << line << " (" << e.what() << ")";
    }
  }
  return out;
}

}  // namespace viscount::test
