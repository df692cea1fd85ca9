#include "telemetry/event_rate_limit.h"

#include <algorithm>

namespace viscount {

bool EventRateLimit::admit(std::string_view event, uint32_t per_second, Clock::time_point now,
                           uint64_t* suppressed) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(windows_.begin(), windows_.end(),
                         [&](const Window& w) { return w.event == event; });
  if (it == windows_.end()) {
    if (windows_.size() < kMaxEvents) {
      windows_.push_back({std::string(event), now, 0, 0});
      it = windows_.end() - 1;
    } else {
      it = std::min_element(windows_.begin(), windows_.end(),
                            [](const Window& a, const Window& b) { return a.start < b.start; });
      *it = {std::string(event), now, 0, 0};
    }
  }
  if (now - it->start >= std::chrono::seconds(1)) {
    it->start = now;
    it->written = 0;
  }
  if (it->written >= per_second) {
    ++it->held_back;
    ++suppressed_total_;
    return false;
  }
  ++it->written;
  *suppressed = it->held_back;
  it->held_back = 0;
  return true;
}

uint64_t EventRateLimit::suppressedTotal() const {
  std::lock_guard lock(mutex_);
  return suppressed_total_;
}

}  // namespace viscount
