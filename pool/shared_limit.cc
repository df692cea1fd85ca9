#include "pool/shared_limit.h"

#include "proxy/net/event_loop.h"

namespace viscount {

SharedLimit::SharedLimit(std::vector<EventLoop*> loops, uint64_t capacity) : capacity_(capacity) {
  for (EventLoop* loop : loops) {
    workers_.push_back(std::make_unique<PerWorker>());
    workers_.back()->loop = loop;
  }
}

bool SharedLimit::tryAcquire() {
  uint64_t used = in_use_.load();
  do {
    if (used >= capacity_.load(std::memory_order_relaxed)) return false;
  } while (!in_use_.compare_exchange_weak(used, used + 1));
  return true;
}

void SharedLimit::release() {
  in_use_.fetch_sub(1);
  if (waiting_members_.load() > 0) wakeWaiters();
}

bool SharedLimit::tryAddWaiter(uint64_t max_waiters) {
  uint64_t n = waiters_.load(std::memory_order_relaxed);
  do {
    if (n >= max_waiters) return false;
  } while (!waiters_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
  return true;
}

LimitMember::~LimitMember() {
  if (!limit_) return;
  setWaiting(false);
  leaveList();  // before limit_ goes: this may be the last reference to the list's owner
}

void LimitMember::joinLimit(std::shared_ptr<SharedLimit> limit, size_t w) {
  limit_ = std::move(limit);
  worker_ = w;
  limit_->workers_[w]->members.pushBack(*this);
}

void LimitMember::setWaiting(bool waiting) {
  if (waiting_ == waiting) return;
  waiting_ = waiting;
  SharedLimit::PerWorker& pw = *limit_->workers_[worker_];
  if (waiting) {
    pw.waiting.fetch_add(1);
    limit_->waiting_members_.fetch_add(1);
  } else {
    pw.waiting.fetch_sub(1);
    limit_->waiting_members_.fetch_sub(1);
  }
}

void SharedLimit::wakeWaiters() {
  for (size_t w = 0; w < workers_.size(); ++w) {
    PerWorker& pw = *workers_[w];
    if (pw.waiting.load() == 0 || pw.wake_posted.exchange(true)) continue;
    pw.loop->post([self = shared_from_this(), w] { self->wakeLocal(w); });
  }
}

void SharedLimit::wakeLocal(size_t w) {
  PerWorker& pw = *workers_[w];
  pw.wake_posted.store(false);
  // A member may leave (be destroyed) inside its callback only after the walk moved past it.
  for (LimitMember* m = pw.members.front(); m;) {
    LimitMember* next = pw.members.next(*m);
    if (m->waiting_) m->onUnitsAvailable();
    m = next;
  }
}

void SharedLimit::askOthersForUnit(const LimitMember& asking) {
  for (size_t w = 0; w < workers_.size(); ++w) {
    if (w == asking.worker_) continue;
    workers_[w]->loop->post([self = shared_from_this(), w] {
      for (LimitMember* m = self->workers_[w]->members.front(); m;
           m = self->workers_[w]->members.next(*m)) {
        m->onUnitWanted();
      }
    });
  }
}

}  // namespace viscount
