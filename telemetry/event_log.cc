#include "telemetry/event_log.h"

#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <string>

#include <fmt/format.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/base_sink.h>

#include "telemetry/append_number.h"
#include "telemetry/json_escape.h"
#include "telemetry/terminal_colour.h"
#include "telemetry/time_format.h"

namespace viscount {

// Receives lines that are already formatted and writes them to the descriptor as they are; the
// pattern formatter of spdlog is not used. Counts completed flushes so EventLog::flush can wait.
class EventSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit EventSink(int fd) : fd_(fd) {}

  uint64_t requestFlush() { return ++flush_requested_; }

  void waitFlushed(uint64_t target, std::chrono::milliseconds timeout) {
    std::unique_lock lock(flush_mutex_);
    flushed_cv_.wait_for(lock, timeout, [&] { return flushed_ >= target; });
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const char* p = msg.payload.data();
    size_t left = msg.payload.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // nowhere to report a broken stderr; the event is lost
      p += n;
      left -= static_cast<size_t>(n);
    }
  }

  void flush_() override {
    {
      // Everything requested so far counts as flushed: a flush request lost to queue overrun must
      // not leave later waiters behind for good.
      std::lock_guard lock(flush_mutex_);
      flushed_ = flush_requested_.load();
    }
    flushed_cv_.notify_all();
  }

 private:
  const int fd_;
  std::atomic<uint64_t> flush_requested_{0};
  std::mutex flush_mutex_;
  std::condition_variable flushed_cv_;
  uint64_t flushed_ = 0;
};

namespace {

// Events are rare; the queue preallocates every entry (about 420 bytes each: 1024 of them were
// 436 KiB of every idle process), so keep it small. A burst beyond it drops the oldest events;
// the access log still has a line for every request.
constexpr size_t kQueuedEvents = 256;
constexpr size_t kMaxFieldBytes = 1024;

// How a level appears: spdlog's level, the pretty label (padded to one width) and its colour. The
// JSON form uses the config's own name for the level (toString).
struct LevelStyle {
  spdlog::level::level_enum spdlog_level;
  std::string_view label;
  std::string_view colour;
};

LevelStyle styleOf(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return {spdlog::level::trace, "TRACE", colour::kDim};
    case LogLevel::kDebug:
      return {spdlog::level::debug, "DEBUG", colour::kBlue};
    case LogLevel::kInfo:
      return {spdlog::level::info, "INFO ", colour::kGreen};
    case LogLevel::kWarn:
      return {spdlog::level::warn, "WARN ", colour::kYellow};
    case LogLevel::kError:
      return {spdlog::level::err, "ERROR", colour::kRed};
  }
  return {spdlog::level::info, "INFO ", colour::kGreen};
}

// Numbers, booleans and null look the same in both formats.
void appendScalar(std::string& out, const LogField::Value& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) {
    appendInt(out, *i);
  } else if (const auto* u = std::get_if<uint64_t>(&value)) {
    appendInt(out, *u);
  } else if (const auto* d = std::get_if<double>(&value)) {
    // JSON has no NaN or infinity.
    if (std::isfinite(*d)) {
      fmt::format_to(std::back_inserter(out), "{}", *d);
    } else {
      out.append("null");
    }
  } else if (const auto* b = std::get_if<bool>(&value)) {
    out.append(*b ? "true" : "false");
  } else {
    out.append("null");
  }
}

// In `key=value` lines a value is quoted only when it would be ambiguous otherwise.
void appendPrettyString(std::string& out, std::string_view value) {
  if (value.empty() || value.find_first_of(" \"=") != std::string_view::npos) {
    appendJsonString(out, value, kMaxFieldBytes);
  } else {
    appendJsonEscaped(out, value, kMaxFieldBytes);
  }
}

}  // namespace

std::unique_ptr<EventLog> EventLog::create(LogFormat format, LogLevel level, int fd) {
  return std::unique_ptr<EventLog>(new EventLog(format, level, fd));
}

EventLog::EventLog(LogFormat format, LogLevel level, int fd)
    : format_(format),
      colour_(format == LogFormat::kPretty && ::isatty(fd)),
      level_(level),
      sink_(std::make_shared<EventSink>(fd)) {
  // Signals are for the main thread; the pool thread only writes.
  pool_ = std::make_shared<spdlog::details::thread_pool>(kQueuedEvents, 1, [] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
  });
  logger_ = std::make_shared<spdlog::async_logger>("viscount", sink_, pool_,
                                                   spdlog::async_overflow_policy::overrun_oldest);
  // Filtering happens in log() before any formatting; spdlog passes everything through.
  logger_->set_level(spdlog::level::trace);
}

EventLog::~EventLog() {
  flush();
  // Destroying the pool writes what is still queued and joins its thread; the logger goes last, so
  // it is freed here rather than by the pool thread dropping the last queued reference.
  pool_.reset();
  logger_.reset();
}

void EventLog::log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields,
                   std::string_view request_id) {
  write(level, event, fields, request_id,
        static_cast<int>(level) >= static_cast<int>(LogLevel::kWarn) ? kWarnPerSecond : 0);
}

void EventLog::logRepeating(LogLevel level, std::string_view event, uint32_t per_second,
                            std::initializer_list<LogField> fields) {
  write(level, event, fields, {}, per_second);
}

// `per_second` 0: not rate-limited.
void EventLog::write(LogLevel level, std::string_view event, std::initializer_list<LogField> fields,
                     std::string_view request_id, uint32_t per_second) {
  if (!enabled(level)) return;
  uint64_t suppressed = 0;
  if (per_second > 0 &&
      !rate_limit_.admit(event, per_second, EventRateLimit::Clock::now(), &suppressed)) {
    return;
  }
  std::string line;
  line.reserve(256);
  if (format_ == LogFormat::kJson) {
    formatJson(line, level, event, fields, request_id, suppressed);
  } else {
    formatPretty(line, level, event, fields, request_id, suppressed);
  }
  logger_->log(styleOf(level).spdlog_level, spdlog::string_view_t(line.data(), line.size()));
}

void EventLog::flush() {
  const uint64_t target = sink_->requestFlush();
  logger_->flush();
  sink_->waitFlushed(target, std::chrono::seconds(1));
}

uint64_t EventLog::droppedEvents() const {
  return pool_->overrun_counter();
}

void EventLog::formatJson(std::string& out, LogLevel level, std::string_view event,
                          std::initializer_list<LogField> fields, std::string_view request_id,
                          uint64_t suppressed) const {
  out.append(R"({"ts":")");
  appendRfc3339Millis(out, std::chrono::system_clock::now());
  out.append(R"(","level":")");
  out.append(toString(level));
  out.append(R"(","event":)");
  appendJsonString(out, event, kMaxFieldBytes);
  if (!request_id.empty()) {
    out.append(R"(,"request_id":)");
    appendJsonString(out, request_id, kMaxFieldBytes);
  }
  for (const LogField& field : fields) {
    out.push_back(',');
    appendJsonString(out, field.key, kMaxFieldBytes);
    out.push_back(':');
    if (const auto* s = std::get_if<std::string_view>(&field.value)) {
      appendJsonString(out, *s, kMaxFieldBytes);
    } else {
      appendScalar(out, field.value);
    }
  }
  if (suppressed > 0) {
    out.append(R"(,"suppressed":)");
    appendScalar(out, suppressed);
  }
  out.append("}\n");
}

void EventLog::formatPretty(std::string& out, LogLevel level, std::string_view event,
                            std::initializer_list<LogField> fields, std::string_view request_id,
                            uint64_t suppressed) const {
  const auto paint = [&](std::string_view code) {
    if (colour_) out.append(code);
  };
  paint(colour::kDim);
  appendClockMillis(out, std::chrono::system_clock::now());
  paint(colour::kReset);
  out.push_back(' ');
  const LevelStyle style = styleOf(level);
  paint(style.colour);
  out.append(style.label);
  paint(colour::kReset);
  out.push_back(' ');
  paint(colour::kBold);
  appendJsonEscaped(out, event, kMaxFieldBytes);
  paint(colour::kReset);
  for (const LogField& field : fields) {
    out.push_back(' ');
    paint(colour::kDim);
    appendJsonEscaped(out, field.key, kMaxFieldBytes);
    out.push_back('=');
    paint(colour::kReset);
    if (const auto* s = std::get_if<std::string_view>(&field.value)) {
      appendPrettyString(out, *s);
    } else {
      appendScalar(out, field.value);
    }
  }
  if (suppressed > 0) {
    out.push_back(' ');
    paint(colour::kDim);
    out.append("suppressed=");
    paint(colour::kReset);
    appendScalar(out, suppressed);
  }
  if (!request_id.empty()) {
    out.push_back(' ');
    paint(colour::kDim);
    out.append("request_id=");
    paint(colour::kReset);
    appendPrettyString(out, request_id);
  }
  out.push_back('\n');
}

}  // namespace viscount
