#pragma once

// Batching limits of one upstream on one worker (upstreams[].limits): at most
// max_concurrent_requests in flight over all workers (a SharedLimit), up to max_queued_requests
// waiting over all workers, each worker's waiters served first come, first served. The waiter
// bounds its own wait (queue_timeout) and leaves the queue when it gives up or its client goes.

#include <memory>

#include "config/config.h"
#include "pool/shared_limit.h"
#include "proxy/net/intrusive_list.h"
#include "proxy/net/timer_queue.h"

namespace viscount {

class EventLoop;
class MetricsShard;
class UpstreamMetrics;

struct SlotWaitTag {};

class SlotWaiter : public ListHook<SlotWaitTag> {
 public:
  virtual ~SlotWaiter() = default;
  // A queued request got its slot.
  virtual void onSlotGranted() = 0;
};

class RequestLimiter final : public LimitMember {
 public:
  enum class Admission { kGranted, kQueued, kRejected };

  RequestLimiter(EventLoop& loop, std::shared_ptr<SharedLimit> slots, size_t worker,
                 const UpstreamConfig::Limits& limits, MetricsShard* metrics,
                 UpstreamMetrics* upstream_metrics);
  ~RequestLimiter() override;

  // kGranted: the request holds a slot now. kQueued: onSlotGranted follows, unless cancel()
  // comes first. kRejected: no slot and no queue place.
  Admission admit(SlotWaiter& waiter);
  // Leaves the queue (nothing when not queued).
  void cancel(SlotWaiter& waiter);
  // Gives back a slot taken by admit() or onSlotGranted(). With requests queued on this worker
  // the slot goes to the oldest of them, in a later turn: the request that released it first
  // returns its upstream connection to the pool, for the next one to reuse.
  void release();

 private:
  void onUnitsAvailable() override;
  void grantQueued();
  static void onGrantTimer(void* arg);
  SlotWaiter& dequeue();
  void leftQueue();  // the bookkeeping of a waiter that left the queue, either way
  void slotTaken(int64_t delta);

  const UpstreamConfig::Limits limits_;
  MetricsShard* metrics_;
  UpstreamMetrics* upstream_metrics_;
  IntrusiveList<SlotWaiter, SlotWaitTag> queue_;
  size_t spare_ = 0;  // slots released on this worker while it had waiters, not yet handed on
  Timer grant_timer_;
  bool granting_ = false;
};

}  // namespace viscount
