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
                           MetricsShard* metrics, UpstreamMetrics* upstream_metrics)
    : loop_(loop),
      config_(config),
      addresses_(std::move(addresses)),
      factory_(std::move(factory)),
      metrics_(metrics),
      upstream_metrics_(upstream_metrics) {}

UpstreamPool::~UpstreamPool() {
  // Waiters belong to exchanges that outlive nothing here; just forget them.
  while (waiters_.popFront()) {
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
  if (connecting_.size() < waiters_.size()) startConnect();
}

void UpstreamPool::cancel(PoolCallbacks& waiter) {
  static_cast<ListHook<PoolWaitTag>&>(waiter).leaveList();
}

void UpstreamPool::closeIdle() {
  while (UpstreamConnection* c = idle_.popFront())
    destroy(*c);
}

void UpstreamPool::startConnect() {
  if (addresses_.empty()) {
    if (PoolCallbacks* w = waiters_.popFront()) {
      w->onPoolFailure(ErrorCode::kUpstreamConnectFailed, "upstream has no address", {});
    }
    return;
  }
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
  setState(c, UpstreamConnection::State::kClosed);
  c.timer_.cancel();
  c.closeSocket();
  loop_.deferDelete(std::unique_ptr<Deletable>(&c));
}

void UpstreamPool::handOut(UpstreamConnection& c) {
  static_cast<ListHook<>&>(c).leaveList();
  if (PoolCallbacks* w = waiters_.popFront()) {
    giveTo(c, *w);
  } else {
    makeIdle(c);
  }
}

void UpstreamPool::onConnected(UpstreamConnection& c) {
  handOut(c);
}

void UpstreamPool::onConnectFailed(UpstreamConnection& c, ErrorCode code, std::string_view detail) {
  if (metrics_ && upstream_metrics_) metrics_->upstreamConnectFailed(*upstream_metrics_);
  const std::string address = c.addressText();
  destroy(c);
  // The oldest waiter gets the failure; others keep their own connects in flight.
  if (PoolCallbacks* w = waiters_.popFront()) w->onPoolFailure(code, detail, address);
}

void UpstreamPool::onStreamDone(UpstreamConnection& c, bool reusable) {
  if (!reusable || expired(c)) {
    destroy(c);
    if (!waiters_.empty() && connecting_.size() < waiters_.size()) startConnect();
    return;
  }
  handOut(c);
}

void UpstreamPool::onClosed(UpstreamConnection& c) {
  // Closed by the connection itself (peer closed while idle, or a protocol error).
  destroy(c);
}

}  // namespace viscount
