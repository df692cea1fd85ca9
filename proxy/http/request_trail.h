#pragma once

// The trail of one request: what its lifecycle decided and when (queued, a slot, a pooled
// connection new or reused and how old, each attempt and why it ended, retries, timeouts, the
// local reply), kept so that the access-log line of a request that failed can say why.
//
// Recorded on every request, so it must cost next to nothing: a fixed array inside the request's
// context, no allocation, an event is a few stores. A request with more events than fit keeps the
// first ones and counts the rest (the beginning of a story explains the end better than the end
// explains itself).

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "proxy/http/errors.h"

namespace viscount {

enum class TrailEvent : unsigned char {
  kQueued,            // admission put the request in the upstream's queue
  kSlotGranted,       // a concurrency slot, after queueing
  kPoolWait,          // asked the pool for a connection
  kConnectionNew,     // the attempt runs on a new connection (value: connect time, µs)
  kConnectionReused,  // ... on a pooled one (value: its age, ms; count: streams it carried)
  kResponseHead,      // the upstream's response head arrived (value: status)
  kAttemptFailed,     // the attempt ended without a response (code)
  kRetry,             // another attempt follows (value: its number)
  kTimeout,           // a timer gave up (code)
  kLocalReply,        // viscount answered itself (code; value: status)
  kClientGone,        // the client reset or left (code)
};

// Twelve bytes: the trail is part of every request's context, so it is kept small enough that a
// request's allocation and cache footprint barely grow.
struct TrailEntry {
  uint32_t at_us = 0;  // since the trail's origin (the request's first byte), saturating
  uint32_t value = 0;
  uint16_t count = 0;
  TrailEvent event = TrailEvent::kQueued;
  ErrorCode code = ErrorCode::kNone;
};

class RequestTrail {
 public:
  using Clock = std::chrono::steady_clock;
  // Enough for a request that queued, retried twice and timed out.
  static constexpr size_t kCapacity = 12;

  void setOrigin(Clock::time_point origin) { origin_ = origin; }
  Clock::time_point origin() const { return origin_; }

  void add(TrailEvent event, Clock::time_point at, ErrorCode code = ErrorCode::kNone,
           uint64_t value = 0, uint32_t count = 0) {
    if (size_ == kCapacity) {
      ++dropped_;
      return;
    }
    TrailEntry& e = entries_[size_++];
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(at - origin_).count();
    e.at_us = static_cast<uint32_t>(std::clamp<int64_t>(micros, 0, UINT32_MAX));
    e.value = static_cast<uint32_t>(std::min<uint64_t>(value, UINT32_MAX));
    e.count = static_cast<uint16_t>(std::min<uint32_t>(count, UINT16_MAX));
    e.event = event;
    e.code = code;
  }

  size_t size() const { return size_; }
  uint32_t dropped() const { return dropped_; }
  const TrailEntry& operator[](size_t i) const { return entries_[i]; }
  const TrailEntry* begin() const { return entries_.data(); }
  const TrailEntry* end() const { return entries_.data() + size_; }

 private:
  Clock::time_point origin_{};
  std::array<TrailEntry, kCapacity> entries_;
  uint16_t size_ = 0;
  uint16_t dropped_ = 0;
};

}  // namespace viscount
