#include "proxy/net/timer_queue.h"

#include <event2/event.h>

#include <cassert>

namespace viscount {

void Timer::arm(std::chrono::milliseconds d) {
  queue_->add(*this, d);
}

TimerQueue::TimerQueue(event_base* base) : event_(evtimer_new(base, &TimerQueue::onEvent, this)) {}

TimerQueue::~TimerQueue() {
  lanes_.clear();
  event_free(event_);
}

size_t TimerQueue::pending() const {
  size_t n = 0;
  for (const auto& lane : lanes_)
    n += lane->timers.size();
  return n;
}

void TimerQueue::add(Timer& timer, std::chrono::milliseconds d) {
  timer.leaveList();
  Lane* lane = nullptr;
  for (auto& l : lanes_) {
    if (l->duration == d) {
      lane = l.get();
      break;
    }
  }
  if (!lane) {
    lanes_.push_back(std::make_unique<Lane>());
    lane = lanes_.back().get();
    lane->duration = d;
  }
  timer.deadline_ = Clock::now() + d;
  lane->timers.pushBack(timer);
  if (!scheduled_ || timer.deadline_ < scheduled_for_) schedule(timer.deadline_);
}

void TimerQueue::schedule(Clock::time_point deadline) {
  auto wait = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
  if (wait.count() < 0) wait = std::chrono::microseconds(0);
  // Round up to the millisecond so a timer never fires a little early and needs a second wakeup.
  timeval tv{static_cast<time_t>(wait.count() / 1000000),
             static_cast<suseconds_t>(((wait.count() % 1000000) + 999) / 1000 * 1000)};
  if (tv.tv_usec >= 1000000) {
    tv.tv_sec += 1;
    tv.tv_usec -= 1000000;
  }
  evtimer_add(event_, &tv);
  scheduled_ = true;
  scheduled_for_ = deadline;
}

void TimerQueue::fire() {
  scheduled_ = false;
  const auto now = Clock::now();
  // Expire lane heads; a callback may arm or cancel any timer, including ones in this lane, so
  // the head is re-read after each callback.
  for (size_t i = 0; i < lanes_.size(); ++i) {
    Lane& lane = *lanes_[i];
    while (Timer* t = lane.timers.front()) {
      if (t->deadline_ > now) break;
      t->leaveList();
      t->cb_(t->arg_);
    }
  }
  Clock::time_point earliest = Clock::time_point::max();
  for (auto& lane : lanes_) {
    if (Timer* t = lane->timers.front()) earliest = std::min(earliest, t->deadline_);
  }
  if (earliest != Clock::time_point::max() && (!scheduled_ || earliest < scheduled_for_)) {
    schedule(earliest);
  }
}

void TimerQueue::onEvent(int, short, void* arg) {
  static_cast<TimerQueue*>(arg)->fire();
}

}  // namespace viscount
