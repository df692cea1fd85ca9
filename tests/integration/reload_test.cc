// Config reload from the file on disk, with no signal: an edit, or a Kubernetes ConfigMap update
// (kubelet swaps a ..data link). A valid change takes effect for new requests while requests in
// flight finish on the old config; an invalid one is logged and the old config keeps serving;
// nothing fails under load across many reloads.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"

namespace viscount::test {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// A config whose only difference between versions is the header carrying the request id, so
// every response tells which config served it.
std::string configWithIdHeader(uint16_t upstream_port, const std::string& header,
                               const std::string& extra_top = "") {
  return singleUpstreamConfig(upstream_port, 2, "",
                              "context:\n  request_id: {header: " + header + "}\n" + extra_top);
}

bool waitForReloads(ProxyUnderTest& proxy, uint64_t count,
                    milliseconds limit = milliseconds(5000)) {
  const auto deadline = Clock::now() + limit;
  while (proxy.reloadCount() < count) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

bool waitForEvent(ProxyUnderTest& proxy, const std::string& event,
                  milliseconds limit = milliseconds(5000)) {
  const auto deadline = Clock::now() + limit;
  while (proxy.eventLogText().find("\"" + event + "\"") == std::string::npos) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

// Which of the two id headers came back on a fresh-connection GET (empty on failure).
std::string servedBy(const ProxyUnderTest& proxy) {
  auto r = httpRequest(proxy.port(), "GET", "/which");
  if (!r || r->status != 200) return "";
  if (!r->header("x-req-id").empty()) return "x-req-id";
  if (!r->header("x-request-id").empty()) return "x-request-id";
  return "";
}

TEST(Reload, EditedFileIsReloadedWithoutASignal) {
  TestUpstream upstream;
  ProxyUnderTest proxy(configWithIdHeader(upstream.port(), "x-request-id"));
  ASSERT_EQ(servedBy(proxy), "x-request-id");

  proxy.updateConfig(configWithIdHeader(upstream.port(), "x-req-id"));
  ASSERT_TRUE(waitForReloads(proxy, 1)) << proxy.eventLogText();
  EXPECT_EQ(servedBy(proxy), "x-req-id");
  // The count goes up just before the line is logged: wait for the line.
  EXPECT_TRUE(waitForEvent(proxy, "config_reloaded")) << proxy.eventLogText();
  EXPECT_NE(proxy.eventLogText().find("\"config_changed\""), std::string::npos);
}

TEST(Reload, ConfigMapUpdateIsReloaded) {
  TestUpstream upstream;
  ProxyUnderTest proxy(configWithIdHeader(upstream.port(), "x-request-id"),
                       ConfigLayout::kConfigMapVolume);
  ASSERT_TRUE(std::filesystem::is_symlink(proxy.configPath()));
  ASSERT_EQ(servedBy(proxy), "x-request-id");

  // Several updates in a row: the watch must follow each swap of ..data, not just the first.
  for (int i = 1; i <= 3; ++i) {
    const std::string header = i % 2 == 1 ? "x-req-id" : "x-request-id";
    proxy.updateConfig(configWithIdHeader(upstream.port(), header));
    ASSERT_TRUE(waitForReloads(proxy, static_cast<uint64_t>(i))) << "update " << i;
    EXPECT_EQ(servedBy(proxy), header) << "update " << i;
  }
}

TEST(Reload, SameContentOrOtherFilesDoNotReload) {
  TestUpstream upstream;
  const std::string yaml = configWithIdHeader(upstream.port(), "x-request-id");
  ProxyUnderTest proxy(yaml);
  proxy.updateConfig(yaml);  // rewritten, same bytes
  const std::string neighbour =
      std::filesystem::path(proxy.configPath()).parent_path().string() + "/notes.txt";
  std::ofstream(neighbour) << "not the config\n";
  std::this_thread::sleep_for(milliseconds(600));  // several settle periods; nothing may happen
  EXPECT_EQ(proxy.reloadCount(), 0u);
  EXPECT_EQ(proxy.eventLogText().find("\"config_changed\""), std::string::npos);

  // The watch is still alive afterwards.
  proxy.updateConfig(configWithIdHeader(upstream.port(), "x-req-id"));
  EXPECT_TRUE(waitForReloads(proxy, 1));
}

TEST(Reload, InvalidFileIsRejectedAndTheOldConfigKeepsServing) {
  TestUpstream upstream;
  ProxyUnderTest proxy(configWithIdHeader(upstream.port(), "x-request-id"));
  proxy.updateConfig(configWithIdHeader(upstream.port(), "x-req-id", "drain_timeout: 10x\n"));
  ASSERT_TRUE(waitForEvent(proxy, "reload_rejected")) << proxy.eventLogText();
  const std::string events = proxy.eventLogText();
  // The reason names the file, line and column of the bad value.
  EXPECT_NE(events.find(proxy.configPath() + ":"), std::string::npos) << events;
  EXPECT_NE(events.find("drain_timeout"), std::string::npos) << events;
  EXPECT_EQ(proxy.reloadCount(), 0u);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(servedBy(proxy), "x-request-id");

  // Fixing the file is picked up like any other change.
  proxy.updateConfig(configWithIdHeader(upstream.port(), "x-req-id"));
  ASSERT_TRUE(waitForReloads(proxy, 1)) << proxy.eventLogText();
  EXPECT_EQ(servedBy(proxy), "x-req-id");
}

TEST(Reload, WatchConfigFalseLeavesReloadToTheSignal) {
  TestUpstream upstream;
  ProxyUnderTest proxy(
      configWithIdHeader(upstream.port(), "x-request-id", "watch_config: false\n"));
  proxy.updateConfig(configWithIdHeader(upstream.port(), "x-req-id", "watch_config: false\n"));
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(proxy.reloadCount(), 0u);
  EXPECT_EQ(servedBy(proxy), "x-request-id");
  proxy.reload();  // SIGHUP
  ASSERT_TRUE(waitForReloads(proxy, 1));
  EXPECT_EQ(servedBy(proxy), "x-req-id");
}

// Keep-alive clients loop while the config changes 20 times on disk: every request succeeds,
// each is served by one of the two configs, and a slow request started before a reload finishes
// on the config it started with.
TEST(Reload, TwentyReloadsUnderLoadFailNoRequest) {
  TestUpstream upstream([](const ReceivedRequest& r) {
    UpstreamReply reply = TestUpstream::echoContext(r);
    if (r.target == "/slow") reply.delay = milliseconds(700);
    return reply;
  });
  ProxyUnderTest proxy(configWithIdHeader(upstream.port(), "x-request-id"));

  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<std::string> failures;
  std::atomic<int> served_old{0}, served_new{0}, total{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      // Half the clients keep one connection; the others open one per request.
      const bool keep_alive = c % 2 == 0;
      std::unique_ptr<RawConnection> conn;
      while (!stop.load()) {
        if (!conn || !keep_alive) conn = std::make_unique<RawConnection>(proxy.port());
        std::optional<HttpResponse> r;
        if (conn->send(buildRequest("GET", "/loop"))) r = conn->readResponse();
        ++total;
        if (!r || r->status != 200) {
          std::lock_guard lock(mutex);
          failures.push_back(r ? "status " + std::to_string(r->status) : "no response");
          conn.reset();
          continue;
        }
        if (!r->header("x-req-id").empty()) ++served_new;
        if (!r->header("x-request-id").empty()) ++served_old;
        if (r->header("connection") == "close") conn.reset();
      }
    });
  }

  // A request on the first config, in flight while the reloads start.
  auto slow =
      std::async(std::launch::async, [&] { return httpRequest(proxy.port(), "GET", "/slow"); });
  std::this_thread::sleep_for(milliseconds(100));

  std::vector<double> detect_ms;
  for (int i = 1; i <= 20; ++i) {
    const std::string header = i % 2 == 1 ? "x-req-id" : "x-request-id";
    const auto written = Clock::now();
    proxy.updateConfig(configWithIdHeader(upstream.port(), header));
    ASSERT_TRUE(waitForReloads(proxy, static_cast<uint64_t>(i))) << "reload " << i;
    detect_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - written).count());
    std::this_thread::sleep_for(milliseconds(50));
  }
  stop = true;
  for (auto& t : clients)
    t.join();

  auto slow_response = slow.get();
  ASSERT_TRUE(slow_response);
  EXPECT_EQ(slow_response->status, 200);
  EXPECT_FALSE(slow_response->header("x-request-id").empty()) << "served by the old config";
  EXPECT_TRUE(slow_response->header("x-req-id").empty());

  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << total.load()
                                << " requests failed, first: " << failures.front();
  EXPECT_GT(total.load(), 100);
  EXPECT_EQ(served_old.load() + served_new.load(),
            total.load() - static_cast<int>(failures.size()));
  EXPECT_GT(served_new.load(), 0);
  std::sort(detect_ms.begin(), detect_ms.end());
  std::printf(
      "reload under load: %d requests, 0 failed expected, %zu failed; file change to "
      "reload: median %.0f ms, max %.0f ms\n",
      total.load(), failures.size(), detect_ms[detect_ms.size() / 2], detect_ms.back());
}

}  // namespace
}  // namespace viscount::test
