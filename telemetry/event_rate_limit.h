#pragma once

// Keeps a repeating event from flooding the event log: per event name, at most `per_second`
// lines in each one-second window; the rest are counted, and the next line let through carries
// the count. A failing accept() under descriptor exhaustion once wrote a million lines in three
// seconds; this caps any such loop, whatever the cause.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace viscount {

class EventRateLimit {
 public:
  using Clock = std::chrono::steady_clock;

  // Whether a line for `event` may be written at `now`. When it may, `*suppressed` is the number
  // of lines held back since the last one written (0 usually).
  bool admit(std::string_view event, uint32_t per_second, Clock::time_point now,
             uint64_t* suppressed);

  // Lines held back since start, over all events.
  uint64_t suppressedTotal() const;

 private:
  struct Window {
    std::string event;
    Clock::time_point start;
    uint32_t written = 0;
    uint64_t held_back = 0;
  };
  // Event names are a small fixed set from the code, never from input; past kMaxEvents the
  // oldest window is reused.
  static constexpr size_t kMaxEvents = 64;

  mutable std::mutex mutex_;
  std::vector<Window> windows_;
  uint64_t suppressed_total_ = 0;
};

}  // namespace viscount
