#pragma once

// A capacity shared by every worker: the requests in flight to an upstream, or its open
// connections. A unit is taken with one compare-and-swap and given back with one atomic
// subtraction, so the sum over all workers never exceeds the capacity and the fast path takes no
// lock.
//
// Waiting is per worker. Each worker's users of a limit (a request limiter, a pool) are its
// members; a member with waiters says so, and a release on any worker then posts one wake-up to
// each worker with waiters, whose members take freed units for their own waiters in FIFO order.
// The waiter marks itself waiting before it retries and the releaser subtracts before it looks for
// waiters (both sequentially consistent), so a unit freed while a worker starts to wait is never
// missed.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "proxy/net/intrusive_list.h"

namespace viscount {

class EventLoop;

class SharedLimit;

// One worker's user of a SharedLimit. Called on its own worker's thread only.
class LimitMember : public ListHook<> {
 public:
  LimitMember() = default;
  LimitMember(const LimitMember&) = delete;
  LimitMember& operator=(const LimitMember&) = delete;
  virtual ~LimitMember();

  // Joins `limit` as a member on worker `w`, for the member's lifetime.
  void joinLimit(std::shared_ptr<SharedLimit> limit, size_t w);
  SharedLimit& limit() const { return *limit_; }
  // This member has (or no longer has) waiters.
  void setWaiting(bool waiting);
  bool waiting() const { return waiting_; }

  // Units may have been freed: take what your waiters need with tryAcquire().
  virtual void onUnitsAvailable() = 0;
  // A member on another worker waits while this one may hold a unit it does not need (an idle
  // connection): give it back if so.
  virtual void onUnitWanted() {}

 private:
  friend class SharedLimit;
  std::shared_ptr<SharedLimit> limit_;
  size_t worker_ = 0;
  bool waiting_ = false;
};

class SharedLimit : public std::enable_shared_from_this<SharedLimit> {
 public:
  // One event loop per worker, indexed by worker index; they must outlive every post.
  explicit SharedLimit(std::vector<EventLoop*> loops, uint64_t capacity = 0);
  SharedLimit(const SharedLimit&) = delete;
  SharedLimit& operator=(const SharedLimit&) = delete;

  // Any thread (a reload changes it for new acquisitions; units held are kept).
  void setCapacity(uint64_t capacity) { capacity_.store(capacity); }
  uint64_t inUse() const { return in_use_.load(std::memory_order_relaxed); }

  bool tryAcquire();
  void release();

  // A bounded count of waiters across workers (max_queued_requests).
  bool tryAddWaiter(uint64_t max_waiters);
  void removeWaiter() { waiters_.fetch_sub(1, std::memory_order_relaxed); }

  // True when a member on some worker waits for a unit.
  bool contended() const { return waiting_members_.load() > 0; }

  // Units held but not in use right now, over all workers (idle pooled connections): members
  // count them in and out themselves.
  uint64_t idle() const { return idle_.load(std::memory_order_relaxed); }
  void addIdle() { idle_.fetch_add(1, std::memory_order_relaxed); }
  void removeIdle() { idle_.fetch_sub(1, std::memory_order_relaxed); }

  // Asks the members on the other workers to give back a unit they hold but do not need.
  void askOthersForUnit(const LimitMember& asking);

 private:
  friend class LimitMember;
  struct PerWorker {
    EventLoop* loop = nullptr;
    IntrusiveList<LimitMember> members;
    std::atomic<uint32_t> waiting{0};  // members of this worker with waiters
    std::atomic<bool> wake_posted{false};
  };

  void wakeWaiters();
  void wakeLocal(size_t w);

  std::atomic<uint64_t> capacity_;
  std::atomic<uint64_t> in_use_{0};
  std::atomic<uint64_t> waiters_{0};
  std::atomic<uint64_t> waiting_members_{0};
  std::atomic<uint64_t> idle_{0};
  std::vector<std::unique_ptr<PerWorker>> workers_;
};

}  // namespace viscount
