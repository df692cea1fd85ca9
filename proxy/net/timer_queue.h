#pragma once

// Per-worker timers that cost O(1) to arm and cancel and no allocation. Every timeout in the proxy
// comes from a handful of configured durations, and timers armed with the same duration expire in
// the order they were armed, so each distinct duration keeps a FIFO lane; one libevent timer
// follows the earliest head across lanes. Thousands of pending header, idle and request timers
// cost a list node each.

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "proxy/net/intrusive_list.h"

struct event;
struct event_base;

namespace viscount {

using Clock = std::chrono::steady_clock;

class TimerQueue;

class Timer : public ListHook<> {
 public:
  using Callback = void (*)(void* arg);

  Timer(TimerQueue& queue, Callback cb, void* arg) : queue_(&queue), cb_(cb), arg_(arg) {}
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() = default;  // the list hook unlinks itself

  // (Re)starts the timer to fire once after `d`.
  void arm(std::chrono::milliseconds d);
  void cancel() { leaveList(); }
  bool armed() const { return inList(); }
  Clock::time_point deadline() const { return deadline_; }

 private:
  friend class TimerQueue;
  TimerQueue* queue_;
  Callback cb_;
  void* arg_;
  Clock::time_point deadline_{};
};

class TimerQueue {
 public:
  explicit TimerQueue(event_base* base);
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;
  ~TimerQueue();

  size_t pending() const;

 private:
  friend class Timer;
  struct Lane {
    std::chrono::milliseconds duration;
    IntrusiveList<Timer> timers;
  };

  void add(Timer& timer, std::chrono::milliseconds d);
  void schedule(Clock::time_point deadline);
  void fire();
  static void onEvent(int, short, void* arg);

  event* event_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  bool scheduled_ = false;
  Clock::time_point scheduled_for_{};
};

}  // namespace viscount
