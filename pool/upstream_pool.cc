#include "pool/upstream_pool.h"

#include "telemetry/metrics.h"

namespace viscount {
namespace {
const char* stateLabel(UpstreamConnection::State s) {
  switch (s) {
    case UpstreamConnection::State::kConnecting:
      return "connecting";
    case UpstreamConnection::State::kIdle:
      return "idle";
    case UpstreamConnection::State::kBusy:
      return "active";
    case UpstreamConnection::State::kClosed:
      return nullptr;
  }
  return nullptr;
}
}  // namespace

UpstreamPool::UpstreamPool(EventLoop& loop, const UpstreamConfig& config,
                           std::vector<ResolvedAddress> addresses, Factory factory,
                           std::shared_ptr<SharedLimit> connections, size_t worker,
                           MetricsShard* metrics, UpstreamMetrics* upstream_metrics)
    : loop_(loop),
      config_(config),
      addresses_(std::move(addresses)),
      factory_(std::move(factory)),
      metrics_(metrics),
      upstream_metrics_(upstream_metrics) {
  joinLimit(std::move(connections), worker);
}

UpstreamPool::~UpstreamPool() {
  // Waiters belong to exchanges that outlive nothing here; just forget them.
  while (popWaiter()) {
  }
  for (auto* list : {&idle_, &busy_, &connecting_}) {
    while (UpstreamConnection* c = list->front())
      destroy(*c);
  }
}

void UpstreamPool::setState(UpstreamConnection& c, UpstreamConnection::State s) {
  if (metrics_ && upstream_metrics_) {
    if (const char* old_label = stateLabel(c.state_)) {
      metrics_->upstreamConnections(*upstream_metrics_, old_label, -1);
    }
    if (const char* new_label = stateLabel(s)) {
      metrics_->upstreamConnections(*upstream_metrics_, new_label, +1);
    }
  }
  if (c.state_ == UpstreamConnection::State::kConnecting) --connecting_count_;
  if (s == UpstreamConnection::State::kConnecting) ++connecting_count_;
  c.state_ = s;
}

bool UpstreamPool::expired(const UpstreamConnection& c) const {
  return Clock::now() - c.createdAt() >= config_.pool.recycle;
}

bool UpstreamPool::usable(UpstreamConnection& c) {
  if (!c.open()) return false;
  if (expired(c)) return false;
  if (config_.pool.pre_ping && !c.stillOpen()) return false;
  return true;
}

void UpstreamPool::acquire(PoolCallbacks& waiter) {
  while (UpstreamConnection* c = idle_.popBack()) {
    if (!usable(*c)) {
      destroy(*c);
      continue;
    }
    if (metrics_ && upstream_metrics_) metrics_->upstreamConnectionReused(*upstream_metrics_);
    giveTo(*c, waiter);
    return;
  }
  waiters_.pushBack(waiter);
  countWaiter(+1);
  connectForWaiters();
}

void UpstreamPool::countWaiter(int delta) {
  waiting_count_ += delta;
  if (metrics_ && upstream_metrics_) metrics_->upstreamPoolWaiters(*upstream_metrics_, delta);
}

PoolCallbacks* UpstreamPool::popWaiter() {
  PoolCallbacks* w = waiters_.popFront();
  if (w) countWaiter(-1);
  return w;
}

void UpstreamPool::cancel(PoolCallbacks& waiter) {
  auto& hook = static_cast<ListHook<PoolWaitTag>&>(waiter);
  if (!hook.inList()) return;
  hook.leaveList();
  countWaiter(-1);
  if (waiting_count_ <= connecting_count_) setWaiting(false);
}

void UpstreamPool::closeIdle() {
  while (UpstreamConnection* c = idle_.popFront())
    destroy(*c);
}

void UpstreamPool::onUnitWanted() {
  // Another worker waits for a connection while the upstream is at its limit: none of ours may
  // sit idle meanwhile.
  closeIdle();
}

void UpstreamPool::connectForWaiters() {
  // A connect can fail at once and its waiter retry: the outer call keeps going.
  if (connecting_for_waiters_) return;
  connecting_for_waiters_ = true;
  while (waiting_count_ > connecting_count_) {
    if (addresses_.empty()) {
      popWaiter()->onPoolFailure(ErrorCode::kUpstreamConnectFailed, "upstream has no address", {});
      continue;
    }
    if (!limit().tryAcquire()) {
      const bool was_waiting = waiting();
      setWaiting(true);
      // Look again now that a release anywhere will wake us; then ask the other workers for
      // their idle connections, once per wait.
      if (!limit().tryAcquire()) {
        if (!was_waiting) limit().askOthersForUnit(*this);
        connecting_for_waiters_ = false;
        return;
      }
    }
    startConnect();
  }
  setWaiting(false);
  connecting_for_waiters_ = false;
}

void UpstreamPool::startConnect() {
  const ResolvedAddress& address = addresses_[next_address_++ % addresses_.size()];
  std::unique_ptr<UpstreamConnection> owned = factory_(*this, loop_, address);
  UpstreamConnection& c = *owned.release();  // owned by the lists; deleted via deferDelete
  ++opened_;
  setState(c, UpstreamConnection::State::kConnecting);
  connecting_.pushBack(c);
  c.connect();
}

void UpstreamPool::giveTo(UpstreamConnection& c, PoolCallbacks& waiter) {
  c.timer_.cancel();
  setState(c, UpstreamConnection::State::kBusy);
  busy_.pushBack(c);
  waiter.onPoolReady(c);
}

void UpstreamPool::makeIdle(UpstreamConnection& c) {
  setState(c, UpstreamConnection::State::kIdle);
  idle_.pushBack(c);
  c.timer_.arm(config_.pool.idle_timeout);
}

void UpstreamPool::destroy(UpstreamConnection& c) {
  static_cast<ListHook<>&>(c).leaveList();
  // Every connection holds one unit of the connection limit from startConnect until here.
  const bool counted = c.state_ != UpstreamConnection::State::kClosed;
  setState(c, UpstreamConnection::State::kClosed);
  c.timer_.cancel();
  c.closeSocket();
  loop_.deferDelete(std::unique_ptr<Deletable>(&c));
  if (counted) limit().release();
}

void UpstreamPool::handOut(UpstreamConnection& c) {
  static_cast<ListHook<>&>(c).leaveList();
  if (PoolCallbacks* w = popWaiter()) {
    giveTo(c, *w);
  } else if (limit().inUse() > config_.pool.size || limit().contended()) {
    // An overflow connection, or one another worker needs the room of: close it.
    destroy(c);
  } else {
    makeIdle(c);
  }
}

void UpstreamPool::onConnected(UpstreamConnection& c) {
  handOut(c);
}

void UpstreamPool::onConnectFailed(UpstreamConnection& c, ErrorCode code, std::string_view detail) {
  if (metrics_ && upstream_metrics_) metrics_->upstreamConnectFailed(*upstream_metrics_);
  if (metrics_ && code == ErrorCode::kUpstreamConnectTimeout)
    metrics_->timedOut("upstream_connect");
  const std::string address = c.addressText();
  destroy(c);
  // The oldest waiter gets the failure; others keep their own connects in flight.
  if (PoolCallbacks* w = popWaiter()) w->onPoolFailure(code, detail, address);
  connectForWaiters();
}

void UpstreamPool::onStreamDone(UpstreamConnection& c, bool reusable) {
  if (!reusable || expired(c)) {
    destroy(c);
    connectForWaiters();
    return;
  }
  handOut(c);
}

void UpstreamPool::onIdleTimeout(UpstreamConnection& c) {
  if (metrics_) metrics_->timedOut("upstream_idle");
  destroy(c);
}

void UpstreamPool::onClosed(UpstreamConnection& c) {
  // Closed by the connection itself (peer closed while idle, or a protocol error).
  destroy(c);
  connectForWaiters();
}

}  // namespace viscount
