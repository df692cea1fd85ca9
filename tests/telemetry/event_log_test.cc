#include "telemetry/event_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/telemetry/telemetry_test_support.h"

namespace viscount {
namespace {

using nlohmann::json;
using testing::readFile;
using testing::splitLines;
using testing::TempPath;

// The event log writes to a descriptor it does not own; the test keeps a temporary file open.
class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fd_ = ::open(file_.path().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override { ::close(fd_); }

  std::vector<std::string> lines() { return splitLines(readFile(file_.path())); }

  TempPath file_;
  int fd_ = -1;
};

TEST_F(EventLogTest, JsonLineWithRequestIdAndTypedFields) {
  auto log = EventLog::create(LogFormat::kJson, LogLevel::kInfo, fd_);
  const std::string address = "0.0.0.0:15006";
  log->log(LogLevel::kInfo, "listener_bound",
           {{"listener", "inbound"},
            {"address", address},
            {"port", 15006},
            {"workers", 4U},
            {"bytes", uint64_t{1} << 40},
            {"delta", -3},
            {"ratio", 0.25},
            {"nan", std::nan("")},
            {"infinite", std::numeric_limits<double>::infinity()},
            {"tls", false},
            {"ca", nullptr}},
           "0b6f3c1e-6d1b-4c27-9a8e-3f0c2d4b5a69");
  log->flush();

  const auto out = lines();
  ASSERT_EQ(out.size(), 1U);
  const json j = json::parse(out[0]);
  EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(),
                               std::regex(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)")));
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["event"], "listener_bound");
  EXPECT_EQ(j["request_id"], "0b6f3c1e-6d1b-4c27-9a8e-3f0c2d4b5a69");
  EXPECT_EQ(j["listener"], "inbound");
  EXPECT_EQ(j["address"], "0.0.0.0:15006");
  EXPECT_EQ(j["port"], 15006);
  EXPECT_EQ(j["workers"], 4);
  EXPECT_EQ(j["bytes"], uint64_t{1} << 40);
  EXPECT_EQ(j["delta"], -3);
  EXPECT_EQ(j["ratio"], 0.25);
  EXPECT_TRUE(j["nan"].is_null());
  EXPECT_TRUE(j["infinite"].is_null());
  EXPECT_EQ(j["tls"], false);
  EXPECT_TRUE(j["ca"].is_null());
  // Key order as written: the common keys first.
  EXPECT_TRUE(out[0].starts_with(R"({"ts":")"));
  EXPECT_NE(out[0].find(R"(,"level":"info","event":"listener_bound","request_id":)"),
            std::string::npos);
}

TEST_F(EventLogTest, NoRequestIdKeyWhenNotAboutARequest) {
  auto log = EventLog::create(LogFormat::kJson, LogLevel::kInfo, fd_);
  log->log(LogLevel::kWarn, "upstream_unhealthy", {{"upstream", "app"}});
  log->flush();
  const json j = json::parse(lines().at(0));
  EXPECT_EQ(j["level"], "warn");
  EXPECT_FALSE(j.contains("request_id"));
}

TEST_F(EventLogTest, LevelFiltering) {
  auto log = EventLog::create(LogFormat::kJson, LogLevel::kWarn, fd_);
  EXPECT_FALSE(log->enabled(LogLevel::kInfo));
  EXPECT_TRUE(log->enabled(LogLevel::kError));
  log->log(LogLevel::kDebug, "hidden");
  log->log(LogLevel::kInfo, "hidden");
  log->log(LogLevel::kError, "shown");
  log->setLevel(LogLevel::kDebug);
  log->log(LogLevel::kDebug, "shown_after_change");
  log->log(LogLevel::kTrace, "hidden");
  log->flush();
  const auto out = lines();
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(json::parse(out[0])["event"], "shown");
  EXPECT_EQ(json::parse(out[0])["level"], "error");
  EXPECT_EQ(json::parse(out[1])["event"], "shown_after_change");
  EXPECT_EQ(json::parse(out[1])["level"], "debug");
}

TEST_F(EventLogTest, HostileValuesAreEscaped) {
  auto log = EventLog::create(LogFormat::kJson, LogLevel::kInfo, fd_);
  log->log(LogLevel::kError, "config_invalid",
           {{"message", "line 1\nline 2 \"quoted\" \xFF"}, {"we\"ird\nkey", "v"}}, "id\r\n");
  log->flush();
  const auto out = lines();
  ASSERT_EQ(out.size(), 1U);
  const json j = json::parse(out[0]);
  EXPECT_EQ(j["message"], "line 1\nline 2 \"quoted\" \xEF\xBF\xBD");
  EXPECT_EQ(j["we\"ird\nkey"], "v");
  EXPECT_EQ(j["request_id"], "id\r\n");
}

TEST_F(EventLogTest, PrettyLinesAreReadableAndUncolouredOffTerminal) {
  auto log = EventLog::create(LogFormat::kPretty, LogLevel::kInfo, fd_);
  log->log(LogLevel::kInfo, "listener_bound",
           {{"address", "0.0.0.0:15006"}, {"name", "two words"}, {"http2", true}}, "abc");
  log->flush();
  const auto out = lines();
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].find('\x1b'), std::string::npos);
  EXPECT_TRUE(std::regex_match(
      out[0],
      std::regex(R"(^\d{2}:\d{2}:\d{2}\.\d{3} INFO  listener_bound address=0\.0\.0\.0:15006 )"
                 R"(name="two words" http2=true request_id=abc$)")))
      << out[0];
}

TEST_F(EventLogTest, ConcurrentEventsStayWholeLines) {
  auto log = EventLog::create(LogFormat::kJson, LogLevel::kInfo, fd_);
  constexpr int kThreads = 4;
  constexpr int kEvents = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&log, t] {
      for (int i = 0; i < kEvents; ++i) {
        log->log(LogLevel::kInfo, "tick", {{"thread", t}, {"i", i}});
      }
    });
  }
  for (auto& t : threads)
    t.join();
  log->flush();
  // A full queue overwrites the oldest events rather than blocking: all are written or counted.
  const uint64_t dropped = log->droppedEvents();
  log.reset();
  const auto out = lines();
  EXPECT_EQ(out.size() + dropped, size_t{kThreads} * kEvents);
  EXPECT_GT(out.size(), 0U);
  for (const std::string& line : out)
    ASSERT_TRUE(json::accept(line)) << line;
}

TEST_F(EventLogTest, RepeatingErrorsAreHeldBackAndCounted) {
  auto log = EventLog::create(LogFormat::kJson, LogLevel::kInfo, fd_);
  // A tight loop within one second: the rest of the second is held back.
  for (int i = 0; i < 10000; ++i) {
    log->logRepeating(LogLevel::kError, "accept_failed", 1, {{"reason", "Too many open files"}});
    log->log(LogLevel::kError, "reload_rejected", {{"error", "x"}});
  }
  log->log(LogLevel::kInfo, "tick");  // info is never rate-limited
  log->log(LogLevel::kInfo, "tick");
  log->flush();
  const auto out = lines();
  size_t accept = 0, reload = 0, tick = 0;
  for (const std::string& line : out) {
    const json j = json::parse(line);
    const std::string event = j["event"];
    accept += event == "accept_failed";
    reload += event == "reload_rejected";
    tick += event == "tick";
  }
  // The loop may straddle a second boundary once.
  EXPECT_GE(accept, 1u);
  EXPECT_LE(accept, 2u);
  EXPECT_GE(reload, EventLog::kWarnPerSecond);
  EXPECT_LE(reload, 2 * EventLog::kWarnPerSecond);
  EXPECT_EQ(tick, 2u);
  EXPECT_GE(log->suppressedEvents(), 20000u - 2 - 2 * EventLog::kWarnPerSecond);
}

TEST_F(EventLogTest, TheNextLineSaysHowManyWereSuppressed) {
  auto log = EventLog::create(LogFormat::kJson, LogLevel::kInfo, fd_);
  for (int i = 0; i < 5; ++i)
    log->logRepeating(LogLevel::kError, "accept_failed", 1);
  ASSERT_EQ(log->suppressedEvents(), 4u);
  // Into the next window without a timed assertion: try until a line is let through.
  uint64_t before = log->suppressedEvents();
  for (;;) {
    log->logRepeating(LogLevel::kError, "accept_failed", 1);
    if (log->suppressedEvents() == before) break;  // written, not held back
    before = log->suppressedEvents();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  log->flush();
  const auto out = lines();
  ASSERT_EQ(out.size(), 2u);
  const json last = json::parse(out[1]);
  EXPECT_EQ(last["suppressed"], before);
  EXPECT_FALSE(json::parse(out[0]).contains("suppressed"));
}

}  // namespace
}  // namespace viscount
