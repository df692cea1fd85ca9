// Which send path the workers wrote with. io_uring is the default, and a machine that cannot use
// it falls back to send() without failing anything: so a CI pass meant to cover io_uring could
// silently cover send() twice. This test pins the path to the environment: io_uring unless
// VISCOUNT_IO_URING turns it off (CI's second pass), send() when it does.

#include <dirent.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tests/integration/http_client.h"
#include "tests/integration/proxy_under_test.h"
#include "tests/integration/test_upstream.h"
#include "tests/test_timing.h"

namespace viscount::test {
namespace {

using std::chrono::milliseconds;

// Read here rather than through the product's own parser, so a product that misreads the
// variable cannot agree with itself. The spellings are the documented ones (send_batch.h).
bool ioUringTurnedOff() {
  const char* value = std::getenv("VISCOUNT_IO_URING");
  if (value == nullptr) return false;
  const std::string_view v(value);
  return v == "off" || v == "0" || v == "false";
}

// The `io_uring` field of the "started" event, once the asynchronous event log has written it.
std::optional<bool> startedWithIoUring(const ProxyUnderTest& proxy) {
  std::optional<bool> found;
  eventually(
      [&] {
        std::istringstream lines(proxy.eventLogText());
        std::string line;
        while (std::getline(lines, line)) {
          const auto event = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
          if (event.is_object() && event.value("event", "") == "started" &&
              event.contains("io_uring") && event["io_uring"].is_boolean()) {
            found = event["io_uring"].get<bool>();
            return true;
          }
        }
        return false;
      },
      slowScaled(milliseconds(5000)));
  return found;
}

// io_uring instances open in this process, which runs the proxy in-process: each worker that
// writes through io_uring holds one ring, and a ring that failed is closed as the worker falls
// back to send().
int openIoUringInstances() {
  int rings = 0;
  DIR* fds = ::opendir("/proc/self/fd");
  if (fds == nullptr) return -1;
  while (const dirent* entry = ::readdir(fds)) {
    char target[256];
    const std::string link = std::string("/proc/self/fd/") + entry->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n > 0 && std::string_view(target, static_cast<size_t>(n)) == "anon_inode:[io_uring]") {
      ++rings;
    }
  }
  ::closedir(fds);
  return rings;
}

TEST(SendPath, TheEnvironmentDecidesWhichPathServes) {
  const bool off = ioUringTurnedOff();
  TestUpstream upstream;
  // The default config: io_uring is not mentioned, so its default (on) applies.
  ProxyUnderTest proxy(defaultConfig(upstream.port()));
  for (int i = 0; i < 20; ++i) {
    auto r = httpRequest(proxy.port(), "GET", "/path/" + std::to_string(i));
    ASSERT_TRUE(r) << "request " << i;
    ASSERT_EQ(r->status, 200);
  }

  const std::optional<bool> announced = startedWithIoUring(proxy);
  ASSERT_TRUE(announced) << "no \"started\" event with an io_uring field:\n"
                         << proxy.eventLogText();
  const int workers = static_cast<int>(proxy.server().workerCount());
  if (off) {
    EXPECT_FALSE(*announced) << "VISCOUNT_IO_URING turns io_uring off, yet it was used";
    EXPECT_EQ(openIoUringInstances(), 0);
  } else {
    EXPECT_TRUE(*announced)
        << "io_uring is the default path but the workers write with send(): this machine cannot "
           "use io_uring (old kernel, seccomp profile). Set VISCOUNT_IO_URING=off to test the "
           "send() path on purpose.";
    // After serving traffic every worker still holds its ring: none fell back to send().
    EXPECT_EQ(openIoUringInstances(), workers);
  }
}

}  // namespace
}  // namespace viscount::test
