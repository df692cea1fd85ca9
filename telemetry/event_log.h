#pragma once

// The proxy's own event log (startup, config reloads, upstream health), as opposed to the access
// log. Lines are built on the calling thread and handed to an spdlog async logger with its own
// one-thread pool; a full queue overwrites the oldest entry rather than blocking the caller.
//
// json:   {"ts":"...Z","level":"info","event":"listener_bound","request_id":"...",<fields>}
// pretty: 10:00:00.123 INFO  listener_bound address=0.0.0.0:8080   (coloured on a terminal)

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "config/config.h"
#include "telemetry/event_rate_limit.h"

namespace spdlog {
class async_logger;
namespace details {
class thread_pool;
}
}  // namespace spdlog

namespace viscount {

struct LogField {
  using Value = std::variant<std::string_view, int64_t, uint64_t, double, bool, std::nullptr_t>;

  // Constructors rather than the variant's own conversions, which would turn a `const char*` into
  // a bool and reject an `unsigned` as ambiguous.
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, bool v) : key(k), value(v) {}
  LogField(std::string_view k, double v) : key(k), value(v) {}
  LogField(std::string_view k, std::nullptr_t) : key(k), value(nullptr) {}
  template <std::integral Int>
  requires(!std::same_as<Int, bool>) LogField(std::string_view k, Int v) : key(k) {
    if constexpr (std::is_signed_v<Int>) {
      value = static_cast<int64_t>(v);
    } else {
      value = static_cast<uint64_t>(v);
    }
  }

  std::string_view key;
  Value value;
};

class EventSink;

class EventLog {
 public:
  // Writes to `fd` (stderr by default; tests pass a pipe or a temporary file). The fd is not
  // closed by the EventLog.
  static std::unique_ptr<EventLog> create(LogFormat format, LogLevel level, int fd = 2);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  bool enabled(LogLevel level) const {
    return static_cast<int>(level) >= static_cast<int>(level_.load(std::memory_order_relaxed));
  }

  // `request_id`, when given, ties the event to a request (docs/reference.md: the event log carries
  // it whenever an event belongs to one).
  // Warnings and errors are rate-limited per event name (kWarnPerSecond lines a second, the
  // next line written says how many were held back in a "suppressed" field).
  void log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {},
           std::string_view request_id = {});
  // For an event that can repeat in a tight loop (a failing accept): at most `per_second` lines
  // a second, whatever the level.
  void logRepeating(LogLevel level, std::string_view event, uint32_t per_second,
                    std::initializer_list<LogField> fields = {});

  static constexpr uint32_t kWarnPerSecond = 10;

  void setLevel(LogLevel level) { level_.store(level, std::memory_order_relaxed); }

  // Waits (up to a second) until everything logged so far has been written.
  void flush();

  // Events overwritten because the queue was full.
  uint64_t droppedEvents() const;
  // Events held back by the rate limit.
  uint64_t suppressedEvents() const { return rate_limit_.suppressedTotal(); }

 private:
  EventLog(LogFormat format, LogLevel level, int fd);

  void write(LogLevel level, std::string_view event, std::initializer_list<LogField> fields,
             std::string_view request_id, uint32_t per_second);
  // `suppressed` > 0 becomes one more field.
  void formatJson(std::string& out, LogLevel level, std::string_view event,
                  std::initializer_list<LogField> fields, std::string_view request_id,
                  uint64_t suppressed) const;
  void formatPretty(std::string& out, LogLevel level, std::string_view event,
                    std::initializer_list<LogField> fields, std::string_view request_id,
                    uint64_t suppressed) const;

  const LogFormat format_;
  const bool colour_;
  std::atomic<LogLevel> level_;
  std::shared_ptr<EventSink> sink_;
  std::shared_ptr<spdlog::details::thread_pool> pool_;
  std::shared_ptr<spdlog::async_logger> logger_;
  EventRateLimit rate_limit_;
};

}  // namespace viscount
