#include "telemetry/access_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/telemetry/telemetry_test_support.h"
#include "tests/test_timing.h"

namespace viscount {
namespace {

using namespace std::chrono_literals;
using testing::readFile;
using testing::splitLines;
using testing::TempPath;
using testing::typicalRequest;

LoggingConfig fileConfig(const std::string& path, uint64_t buffer = 1 << 20) {
  LoggingConfig cfg;
  cfg.access_log = path;
  cfg.buffer = buffer;
  return cfg;
}

template <typename Pred>
bool waitFor(Pred pred, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// What a worker does at the end of its last loop turn: keep flushing until the writer took it all.
void flushAll(AccessLogShard& shard) {
  while (!shard.flush())
    std::this_thread::yield();
}

TEST(AccessLog, AppendReportsTheStartOfABatch) {
  TempPath file;
  std::string error;
  auto log = AccessLog::open(fileConfig(file.path()), 1, &error);
  ASSERT_TRUE(log) << error;
  AccessLogShard& shard = log->shard(0);
  const RequestContext ctx = typicalRequest();
  EXPECT_TRUE(shard.append(ctx));
  EXPECT_FALSE(shard.append(ctx));
  EXPECT_FALSE(shard.append(ctx));
  EXPECT_TRUE(shard.flush());
  EXPECT_TRUE(shard.append(ctx));
  EXPECT_TRUE(shard.flush());
  EXPECT_TRUE(shard.flush());  // nothing pending
  log->stop();
  EXPECT_EQ(log->writtenLines(), 4U);
  EXPECT_EQ(splitLines(readFile(file.path())).size(), 4U);
}

TEST(AccessLog, ConcurrentShardsWriteEveryLineWhole) {
  constexpr int kShards = 4;
  constexpr int kLines = 5000;
  TempPath file;
  std::string error;
  auto log = AccessLog::open(fileConfig(file.path()), kShards, &error);
  ASSERT_TRUE(log) << error;

  std::vector<std::thread> workers;
  for (int w = 0; w < kShards; ++w) {
    workers.emplace_back([&log, w] {
      AccessLogShard& shard = log->shard(static_cast<size_t>(w));
      RequestContext ctx = typicalRequest();
      for (int i = 0; i < kLines; ++i) {
        ctx.request_id = "w" + std::to_string(w) + "-" + std::to_string(i);
        // Lines of different lengths, so that batch boundaries fall anywhere.
        ctx.path = "/p/" + std::string(static_cast<size_t>(i % 300), 'x');
        shard.append(ctx);
        if (i % 7 == 0) shard.flush();
      }
      flushAll(shard);
    });
  }
  for (auto& t : workers)
    t.join();
  log->stop();

  EXPECT_EQ(log->droppedLines(), 0U);
  EXPECT_EQ(log->writtenLines(), uint64_t{kShards} * kLines);
  const std::string text = readFile(file.path());
  ASSERT_TRUE(text.ends_with("\n"));
  const auto lines = splitLines(text);
  ASSERT_EQ(lines.size(), size_t{kShards} * kLines);
  std::set<std::string> ids;
  for (const std::string& line : lines) {
    const auto j = nlohmann::json::parse(line);  // throws on a split or interleaved line
    ids.insert(j["request_id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), size_t{kShards} * kLines);
}

TEST(AccessLog, FullPipeNeverBlocksWorkersAndCountsDrops) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  LoggingConfig cfg;
  cfg.buffer = 1;  // the per-shard minimum applies
  auto log = AccessLog::openFd(fds[1], cfg, 1);
  AccessLogShard& shard = log->shard(0);
  const RequestContext ctx = typicalRequest();

  // Nobody reads the pipe: the writer blocks once the pipe buffer is full.
  constexpr uint64_t kAppended = 20000;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < kAppended; ++i) {
    shard.append(ctx);
    if (i % 10 == 9) shard.flush();
  }
  shard.flush();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, 5s) << "appends must not wait for the writer";
  EXPECT_GT(log->droppedLines(), 0U);

  std::string received;
  std::thread reader([&] {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
      received.append(buf, static_cast<size_t>(n));
  });
  // Whatever is still held by the shard goes out once the writer moves again.
  ASSERT_TRUE(waitFor([&] { return shard.flush(); }));
  log->stop();
  ::close(fds[1]);
  reader.join();
  ::close(fds[0]);

  EXPECT_EQ(log->writtenLines() + log->droppedLines(), kAppended);
  const auto lines = splitLines(received);
  EXPECT_EQ(lines.size(), log->writtenLines());
  for (const std::string& line : lines)
    ASSERT_TRUE(nlohmann::json::accept(line));
}

// A non-blocking descriptor that stays full: the writer gives up after a short grace period
// instead of spinning, and a line it had only half written does not corrupt the ones around it.
TEST(AccessLog, NonBlockingFullPipeDropsAfterAGracePeriod) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  auto log = AccessLog::openFd(fds[1], LoggingConfig{}, 1);
  AccessLogShard& shard = log->shard(0);
  RequestContext ctx = typicalRequest();
  constexpr uint64_t kAppended = 1000;
  for (uint64_t i = 0; i < kAppended; ++i) {
    ctx.path = "/" + std::string(i % 97, 'p');
    shard.append(ctx);
    if (i % 50 == 49) flushAll(shard);
  }
  flushAll(shard);
  log->stop();
  EXPECT_EQ(log->writtenLines() + log->droppedLines(), kAppended);
  EXPECT_GT(log->droppedLines(), 0U);

  std::string received;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
    received.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  ::close(fds[1]);
  uint64_t whole = 0;
  for (const std::string& line : splitLines(received))
    whole += nlohmann::json::accept(line);
  EXPECT_EQ(whole, log->writtenLines());
}

TEST(AccessLog, BrokenPipeDropsAndCountsWithoutKillingTheProcess) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ::close(fds[0]);
  auto log = AccessLog::openFd(fds[1], LoggingConfig{}, 1);
  AccessLogShard& shard = log->shard(0);
  const RequestContext ctx = typicalRequest();
  for (int i = 0; i < 100; ++i) {
    shard.append(ctx);
    flushAll(shard);
  }
  log->stop();
  ::close(fds[1]);
  EXPECT_EQ(log->writtenLines(), 0U);
  EXPECT_EQ(log->droppedLines(), 100U);
}

TEST(AccessLog, OffFormatsAndWritesNothing) {
  LoggingConfig cfg;
  cfg.access_log = "off";
  std::string error;
  auto log = AccessLog::open(cfg, 2, &error);
  ASSERT_TRUE(log);
  EXPECT_FALSE(log->enabled());
  EXPECT_FALSE(log->shard(1).append(typicalRequest()));
  EXPECT_TRUE(log->shard(1).flush());
  log->stop();
  EXPECT_EQ(log->writtenLines(), 0U);
  EXPECT_EQ(log->droppedLines(), 0U);
}

TEST(AccessLog, UnwritablePathIsAnError) {
  std::string error;
  auto log = AccessLog::open(fileConfig("/nonexistent-dir/access.log"), 1, &error);
  EXPECT_FALSE(log);
  EXPECT_NE(error.find("/nonexistent-dir/access.log"), std::string::npos) << error;
}

TEST(AccessLog, FileIsCreatedWithMode0644AndAppended) {
  TempPath file;
  ::unlink(file.path().c_str());
  const mode_t old_mask = ::umask(022);
  {
    auto log = AccessLog::open(fileConfig(file.path()), 1, nullptr);
    ASSERT_TRUE(log);
  }
  ::umask(old_mask);
  struct stat st {};
  ASSERT_EQ(::stat(file.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644U);

  {
    std::FILE* f = std::fopen(file.path().c_str(), "w");
    std::fputs("{\"existing\":true}\n", f);
    std::fclose(f);
  }
  auto log = AccessLog::open(fileConfig(file.path()), 1, nullptr);
  log->shard(0).append(typicalRequest());
  flushAll(log->shard(0));
  log->stop();
  const auto lines = splitLines(readFile(file.path()));
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(lines[0], "{\"existing\":true}");
}

TEST(AccessLog, ReopenFollowsLogRotation) {
  TempPath file;
  const std::string rotated = file.path() + ".1";
  auto log = AccessLog::open(fileConfig(file.path()), 1, nullptr);
  ASSERT_TRUE(log);
  AccessLogShard& shard = log->shard(0);
  RequestContext ctx = typicalRequest();
  ctx.request_id = "before";
  shard.append(ctx);
  flushAll(shard);
  ASSERT_TRUE(waitFor([&] { return log->writtenLines() == 1; }));

  ASSERT_EQ(std::rename(file.path().c_str(), rotated.c_str()), 0);
  std::string error;
  ASSERT_TRUE(log->reopen(&error)) << error;
  ctx.request_id = "after";
  shard.append(ctx);
  flushAll(shard);
  log->stop();

  const auto old_lines = splitLines(readFile(rotated));
  const auto new_lines = splitLines(readFile(file.path()));
  ::unlink(rotated.c_str());
  ASSERT_EQ(old_lines.size(), 1U);
  ASSERT_EQ(new_lines.size(), 1U);
  EXPECT_EQ(nlohmann::json::parse(old_lines[0])["request_id"], "before");
  EXPECT_EQ(nlohmann::json::parse(new_lines[0])["request_id"], "after");
}

TEST(AccessLog, PrettyFormatWithoutTerminalHasNoColour) {
  TempPath file;
  LoggingConfig cfg = fileConfig(file.path());
  cfg.format = LogFormat::kPretty;
  auto log = AccessLog::open(cfg, 1, nullptr);
  ASSERT_TRUE(log);
  log->shard(0).append(typicalRequest());
  flushAll(log->shard(0));
  log->stop();
  const std::string text = readFile(file.path());
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_NE(text.find(" GET /api/v1/orders?limit=20 200 2.345ms "), std::string::npos) << text;
}

// The threads of this process, by id.
std::set<pid_t> threadIds() {
  std::set<pid_t> ids;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (const dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] != '.') ids.insert(static_cast<pid_t>(std::stol(entry->d_name)));
    }
    ::closedir(dir);
  }
  return ids;
}

// How often the kernel switched thread `tid` off a CPU, voluntarily or not: it grows each time
// the thread ran, and stands still while the thread sleeps without a timeout.
uint64_t contextSwitches(pid_t tid) {
  std::ifstream status("/proc/self/task/" + std::to_string(tid) + "/status");
  uint64_t total = 0;
  std::string line;
  while (std::getline(status, line)) {
    for (const char* key : {"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"}) {
      if (line.rfind(key, 0) == 0) total += std::stoull(line.substr(std::strlen(key)));
    }
  }
  return total;
}

TEST(AccessLog, IdleWriterUsesNoCpu) {
  // With nothing to write the writer parks on a wait without a timeout, so the kernel does not
  // run it at all: its context switches stand still. A writer that polled, however rarely, would
  // be switched in and out while idle. Counting its switches shows that without a CPU budget,
  // which a loaded or sanitized machine would break.
  TempPath file;
  const std::set<pid_t> before_open = threadIds();
  auto log = AccessLog::open(fileConfig(file.path()), 2, nullptr);
  ASSERT_TRUE(log);
  std::vector<pid_t> started;
  for (pid_t tid : threadIds()) {
    if (!before_open.count(tid)) started.push_back(tid);
  }
  ASSERT_EQ(started.size(), 1U) << "expected one writer thread";
  const pid_t writer = started[0];

  log->shard(0).append(typicalRequest());
  flushAll(log->shard(0));
  ASSERT_TRUE(waitFor([&] { return log->writtenLines() == 1; }, test::slowScaled(5s)));
  // After a batch the writer stays awake a few milliseconds for more; then it parks.
  ASSERT_TRUE(waitFor(
      [&] {
        const uint64_t switches = contextSwitches(writer);
        std::this_thread::sleep_for(100ms);
        return contextSwitches(writer) == switches;
      },
      test::slowScaled(5s)))
      << "the idle writer never stopped running: does it poll?";

  const uint64_t parked = contextSwitches(writer);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(contextSwitches(writer), parked) << "the idle writer ran while nothing was logged";

  // And it wakes up again for the next line.
  log->shard(1).append(typicalRequest());
  flushAll(log->shard(1));
  EXPECT_TRUE(waitFor([&] { return log->writtenLines() == 2; }, test::slowScaled(5s)));
}

TEST(AccessLog, SamplingLeavesOutOnlyPlainSuccesses) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  LoggingConfig cfg;
  cfg.sample_success = 0;  // every plain success left out: what is written is what must be
  auto log = AccessLog::openFd(fds[1], cfg, 1);
  AccessLogShard& shard = log->shard(0);
  RequestContext ok = typicalRequest();
  ok.status = 200;
  ok.error = ErrorCode::kNone;
  RequestContext grpc_ok = ok;
  grpc_ok.grpc = true;
  grpc_ok.grpc_status = 0;
  RequestContext grpc_failed = grpc_ok;
  grpc_failed.grpc_status = 7;  // PERMISSION_DENIED, in HTTP 200
  RequestContext not_found = ok;
  not_found.status = 404;
  RequestContext timed_out = ok;
  timed_out.status = 504;
  timed_out.error = ErrorCode::kUpstreamTimeout;
  for (const RequestContext* ctx : {&ok, &grpc_ok, &grpc_failed, &not_found, &timed_out}) {
    shard.append(*ctx);
  }
  flushAll(shard);
  EXPECT_EQ(log->sampledOutLines(), 2U);
  log->stop();
  ::close(fds[1]);
  std::string written;
  char buf[65536];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    written.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  std::vector<int> statuses;
  std::vector<int> grpc_statuses;
  for (const std::string& line : splitLines(written)) {
    const auto json = nlohmann::json::parse(line);
    statuses.push_back(json["status"].get<int>());
    grpc_statuses.push_back(json["grpc_status"].is_null() ? -1 : json["grpc_status"].get<int>());
  }
  EXPECT_EQ(statuses, (std::vector<int>{200, 404, 504}));
  EXPECT_EQ(grpc_statuses, (std::vector<int>{7, -1, -1}));
}

TEST(AccessLog, LinesRefusedByAFullShardAreCounted) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  LoggingConfig cfg;
  cfg.buffer = 600;  // 300 lines per shard
  auto log = AccessLog::openFd(fds[1], cfg, 2);
  const RequestContext ctx = typicalRequest();
  // Without a flush nothing leaves the shard, so exactly the capacity is accepted: the first 300
  // lines, then none. append() says true only for the line that starts a batch (the caller's cue
  // to flush) and false both for a line joining it and for a refused one, so each call is judged
  // by what it returned and by whether it was counted as dropped.
  AccessLogShard& shard = log->shard(0);
  std::vector<int> started;  // lines whose append() returned true
  uint64_t accepted = 0;
  int last_accepted = -1;
  int refused_but_true = 0;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t dropped_before = shard.droppedLines();
    const bool returned = shard.append(ctx);
    const bool refused = shard.droppedLines() != dropped_before;
    if (returned) started.push_back(i);
    if (refused && returned) ++refused_but_true;
    if (!refused) {
      ++accepted;
      last_accepted = i;
    }
  }
  EXPECT_EQ(started, std::vector<int>{0}) << "only the first line starts a batch";
  EXPECT_EQ(refused_but_true, 0) << "a refused line must not ask for a flush";
  EXPECT_EQ(accepted, 300U);
  EXPECT_EQ(last_accepted, 299) << "a line was accepted after the shard was full";
  EXPECT_EQ(log->shard(0).droppedLines(), 700U);
  EXPECT_EQ(log->shard(1).droppedLines(), 0U);
  EXPECT_EQ(log->droppedLines(), 700U);
  ::close(fds[0]);
  log->stop();
  ::close(fds[1]);
}

}  // namespace
}  // namespace viscount
