#include "filters/request_limiter.h"

#include "proxy/net/event_loop.h"
#include "telemetry/metrics.h"

namespace viscount {

RequestLimiter::RequestLimiter(EventLoop& loop, std::shared_ptr<SharedLimit> slots, size_t worker,
                               const UpstreamConfig::Limits& limits, MetricsShard* metrics,
                               UpstreamMetrics* upstream_metrics)
    : limits_(limits),
      metrics_(metrics),
      upstream_metrics_(upstream_metrics),
      grant_timer_(loop.timers(), &RequestLimiter::onGrantTimer, this) {
  joinLimit(std::move(slots), worker);
}

RequestLimiter::~RequestLimiter() {
  // Waiters belong to exchanges that cancel before they die; forget any left.
  while (!queue_.empty())
    dequeue();
  for (; spare_ > 0; --spare_)
    limit().release();
}

void RequestLimiter::slotTaken(int64_t delta) {
  if (metrics_ && upstream_metrics_) metrics_->upstreamInFlight(*upstream_metrics_, delta);
}

RequestLimiter::Admission RequestLimiter::admit(SlotWaiter& waiter) {
  if (queue_.empty() && limit().tryAcquire()) {
    slotTaken(+1);
    return Admission::kGranted;
  }
  if (!limit().tryAddWaiter(limits_.max_queued_requests)) return Admission::kRejected;
  queue_.pushBack(waiter);
  if (metrics_ && upstream_metrics_) metrics_->upstreamQueueDepth(*upstream_metrics_, +1);
  setWaiting(true);
  // A slot freed on another worker before we were marked waiting would wake nobody: look again.
  if (queue_.front() == &waiter && limit().tryAcquire()) {
    dequeue();
    slotTaken(+1);
    return Admission::kGranted;
  }
  return Admission::kQueued;
}

SlotWaiter& RequestLimiter::dequeue() {
  SlotWaiter& w = *queue_.popFront();
  leftQueue();
  return w;
}

void RequestLimiter::leftQueue() {
  limit().removeWaiter();
  if (metrics_ && upstream_metrics_) metrics_->upstreamQueueDepth(*upstream_metrics_, -1);
  if (queue_.empty()) setWaiting(false);
}

void RequestLimiter::cancel(SlotWaiter& waiter) {
  auto& hook = static_cast<ListHook<SlotWaitTag>&>(waiter);
  if (!hook.inList()) return;
  hook.leaveList();
  leftQueue();
}

void RequestLimiter::release() {
  slotTaken(-1);
  if (queue_.empty() && !granting_) {
    limit().release();
    return;
  }
  // Keep the slot for the oldest local waiter, without a trip through the shared count.
  ++spare_;
  if (!granting_ && !grant_timer_.armed()) grant_timer_.arm(std::chrono::milliseconds(0));
}

void RequestLimiter::onGrantTimer(void* arg) {
  static_cast<RequestLimiter*>(arg)->grantQueued();
}

void RequestLimiter::onUnitsAvailable() {
  grantQueued();
}

void RequestLimiter::grantQueued() {
  // A granted request may fail at once and release its slot: that comes back here as spare_
  // and is handed on by this loop, not by a nested one.
  if (granting_) return;
  granting_ = true;
  while (!queue_.empty() && (spare_ > 0 || limit().tryAcquire())) {
    if (spare_ > 0) --spare_;
    SlotWaiter& w = dequeue();
    slotTaken(+1);
    w.onSlotGranted();
  }
  for (; spare_ > 0; --spare_)
    limit().release();
  granting_ = false;
}

}  // namespace viscount
