#include "proxy/net/event_loop.h"

#include <event2/event.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>

namespace viscount {

EventLoop::EventLoop() {
  event_config* cfg = event_config_new();
  // Workers never share a base between threads, so libevent's internal locking is not needed.
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  event_config_require_features(cfg, EV_FEATURE_ET | EV_FEATURE_EARLY_CLOSE);
  base_ = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (!base_) throw std::runtime_error("cannot create an event loop (needs epoll)");
  timers_ = std::make_unique<TimerQueue>(base_);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error("eventfd failed");
  wake_event_ = event_new(base_, wake_fd_, EV_READ | EV_PERSIST, &EventLoop::onWake, this);
  event_add(wake_event_, nullptr);
}

void EventLoop::useBatchedSends() {
  if (!batch_) batch_ = SendBatch::create();
}

EventLoop::~EventLoop() {
  runDeferred();
  event_free(wake_event_);
  close(wake_fd_);
  timers_.reset();
  event_base_free(base_);
}

void EventLoop::run() {
  while (!stopping_.load(std::memory_order_acquire)) {
    event_base_loop(base_, EVLOOP_ONCE);
    endOfTurn();
  }
  endOfTurn();
}

void EventLoop::runOnce() {
  event_base_loop(base_, EVLOOP_ONCE);
  endOfTurn();
}

void EventLoop::stop() {
  stopping_.store(true, std::memory_order_release);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void EventLoop::drainPosted() {
  uint64_t count;
  [[maybe_unused]] ssize_t n = read(wake_fd_, &count, sizeof(count));
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    batch.swap(posted_);
  }
  for (auto& fn : batch)
    fn();
}

void EventLoop::onWake(int, short, void* arg) {
  static_cast<EventLoop*>(arg)->drainPosted();
}

void EventLoop::runDeferred() {
  // Deleting one object can defer the deletion of others (a request's last reference to a
  // config snapshot takes its pools with it), so repeat until nothing is left.
  while (!deferred_.empty()) {
    auto dead = std::move(deferred_);
    deferred_.clear();
    dead.clear();
  }
}

void EventLoop::flushAll() {
  if (!batch_) {
    while (Flushable* f = flushes_.popFront())
      f->flush();
    return;
  }
  while (!flushes_.empty()) {
    // Every output is made final first: that can run protocol code which adds to the output of
    // others. Only then are the sends queued, pointing into buffers nothing changes until the
    // batch has gone out.
    prepared_.clear();
    while (Flushable* f = flushes_.popFront()) {
      if (f->prepareFlush()) prepared_.push_back(f);
    }
    size_t next = 0;
    while (next < prepared_.size()) {
      queued_.clear();
      for (; next < prepared_.size() && !batch_->full(); ++next) {
        if (prepared_[next]->queueSend(*batch_)) queued_.push_back(prepared_[next]);
      }
      const bool ring_ok = batch_->submit();
      // Results may complete requests, close connections or queue more output: that output is
      // flushed in the next round of this loop. Nothing is deleted before runDeferred().
      const std::vector<ssize_t>& results = batch_->results();
      const std::vector<size_t>& lengths = batch_->lengths();
      for (size_t i = 0; i < queued_.size(); ++i)
        queued_[i]->completeSend(results[i], lengths[i]);
      if (!ring_ok) {
        // Unsent output was rescheduled by completeSend; it and the rest go out with send().
        for (; next < prepared_.size(); ++next)
          prepared_[next]->flush();
        batch_.reset();
        return flushAll();
      }
    }
  }
}

void EventLoop::endOfTurn() {
  // Flushing can complete a request, which can release a connection and start the next queued
  // request, which schedules more flushes: repeat until quiet.
  while (!flushes_.empty() || !deferred_.empty()) {
    flushAll();
    runDeferred();
  }
  for (auto& hook : hooks_)
    hook();
}

}  // namespace viscount
