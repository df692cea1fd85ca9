#include "pool/upstream_pool.h"

#include <algorithm>

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
  if (config_.url.scheme == UpstreamScheme::kH2c) streams_per_connection_ = kAssumedHttp2Streams;
}

UpstreamPool::~UpstreamPool() {
  // Waiters belong to exchanges that outlive nothing here; just forget them.
  while (popWaiter()) {
  }
  for (auto* list : {&idle_, &busy_, &sharing_, &connecting_, &tunnels_}) {
    while (UpstreamConnection* c = list->front())
      destroy(*c);
  }
}

UpstreamProtocol UpstreamPool::protocolFor(std::string_view alpn) const {
  switch (config_.url.scheme) {
    case UpstreamScheme::kH2c:
      return UpstreamProtocol::kHttp2;
    case UpstreamScheme::kHttps:
      return alpn == "h2" ? UpstreamProtocol::kHttp2 : UpstreamProtocol::kHttp1;
    case UpstreamScheme::kHttp:
      break;
  }
  return UpstreamProtocol::kHttp1;
}

std::unique_ptr<UpstreamCodec> UpstreamPool::makeCodec(UpstreamConnection& c,
                                                       std::string_view alpn) {
  return factory_(c, protocolFor(alpn));
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
  if (c.state_ == UpstreamConnection::State::kIdle && s != c.state_) limit().removeIdle();
  if (s == UpstreamConnection::State::kIdle && s != c.state_) limit().addIdle();
  c.state_ = s;
}

bool UpstreamPool::expired(const UpstreamConnection& c) const {
  return Clock::now() - c.createdAt() >= config_.pool.recycle;
}

size_t UpstreamPool::room(const UpstreamConnection& c) const {
  if (c.retired_ || c.state_ == UpstreamConnection::State::kClosed) return 0;
  return c.streamCapacity();
}

bool UpstreamPool::usable(UpstreamConnection& c) {
  if (!c.open()) return false;
  if (expired(c)) return false;
  if (room(c) == 0) return false;
  if (config_.pool.pre_ping && !c.stillOpen()) return false;
  return true;
}

void UpstreamPool::acquire(PoolCallbacks& waiter) {
  // Another stream on a connection that already carries some: nothing to open or wake.
  while (UpstreamConnection* c = sharing_.front()) {
    if (expired(*c) || room(*c) == 0) {
      retire(*c);
      continue;
    }
    if (metrics_ && upstream_metrics_) metrics_->upstreamConnectionReused(*upstream_metrics_);
    giveTo(*c, waiter);
    return;
  }
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
  if (waiting_count_ <= connecting_count_ * streams_per_connection_) setWaiting(false);
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
  while (waiting_count_ > connecting_count_ * streams_per_connection_) {
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
  // Owned by the lists; deleted via deferDelete. Its codec comes once the transport is up.
  auto& c = *new UpstreamConnection(*this, loop_, address);
  ++opened_;
  setState(c, UpstreamConnection::State::kConnecting);
  connecting_.pushBack(c);
  c.connect();
}

void UpstreamPool::giveTo(UpstreamConnection& c, PoolCallbacks& waiter) {
  c.timer_.cancel();
  c.lingering_ = false;
  if (c.state_ != UpstreamConnection::State::kBusy) {
    setState(c, UpstreamConnection::State::kBusy);
  }
  static_cast<ListHook<>&>(c).leaveList();
  busy_.pushBack(c);
  waiter.onPoolReady(c);  // starts its stream
  if (c.state_ == UpstreamConnection::State::kBusy) place(c);
}

void UpstreamPool::place(UpstreamConnection& c) {
  static_cast<ListHook<>&>(c).leaveList();
  (room(c) > 0 ? sharing_ : busy_).pushBack(c);
}

void UpstreamPool::retire(UpstreamConnection& c) {
  c.retired_ = true;
  if (c.activeStreams() == 0) {
    destroy(c);
  } else {
    place(c);
  }
}

void UpstreamPool::makeIdle(UpstreamConnection& c, bool beyond_size) {
  static_cast<ListHook<>&>(c).leaveList();
  setState(c, UpstreamConnection::State::kIdle);
  idle_.pushBack(c);
  c.lingering_ = beyond_size;
  c.timer_.arm(beyond_size ? std::min(config_.pool.idle_timeout, kOverflowLinger)
                           : config_.pool.idle_timeout);
}

void UpstreamPool::destroy(UpstreamConnection& c) {
  static_cast<ListHook<>&>(c).leaveList();
  // Every connection holds one unit of the connection limit from startConnect until here.
  const bool counted = c.state_ != UpstreamConnection::State::kClosed && !c.detached_;
  setState(c, UpstreamConnection::State::kClosed);
  c.timer_.cancel();
  c.closeSocket();
  loop_.deferDelete(std::unique_ptr<Deletable>(&c));
  if (counted) limit().release();
}

void UpstreamPool::handOut(UpstreamConnection& c) {
  while (room(c) > 0) {
    PoolCallbacks* w = popWaiter();
    if (!w) break;
    // Handed straight from one request to the next: a reuse as much as one taken from idle.
    if (c.requestsServed() > 0 && metrics_ && upstream_metrics_) {
      metrics_->upstreamConnectionReused(*upstream_metrics_);
    }
    giveTo(c, *w);
    if (c.state_ == UpstreamConnection::State::kClosed) break;
  }
  if (c.state_ == UpstreamConnection::State::kClosed) {
    // Failed while its streams started; destroy() already gave its place back.
  } else if (c.activeStreams() > 0) {
    place(c);
  } else if (c.state_ == UpstreamConnection::State::kIdle) {
    if (room(c) == 0) destroy(c);  // e.g. the peer said GOAWAY to an idle connection
  } else if (room(c) == 0 || limit().contended() || config_.pool.size == 0) {
    // Unusable, one another worker needs the room of, or no idle connections are kept at all:
    // close it.
    destroy(c);
  } else {
    // One more than the `size` idle connections kept (pool_size) lingers briefly rather than
    // closing at once: under a sustained burst the next request takes it (idle ones go out
    // newest first), where closing it meant a new connection for almost every request.
    makeIdle(c, limit().idle() >= config_.pool.size);
  }
  // Waiters beyond what this connection could take need connections of their own.
  if (waiting_count_ > 0) connectForWaiters();
}

void UpstreamPool::onConnected(UpstreamConnection& c) {
  // What this connection carries is the best guess for the next ones to this upstream.
  streams_per_connection_ = std::max<size_t>(1, room(c));
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
  if (!reusable || expired(c)) c.retired_ = true;
  if (c.retired_) {
    // Its other streams (HTTP/2) finish first; the last one closes it.
    if (c.activeStreams() == 0) {
      destroy(c);
      connectForWaiters();
    } else {
      place(c);
    }
    return;
  }
  handOut(c);
}

void UpstreamPool::onCapacityChanged(UpstreamConnection& c) {
  handOut(c);
}

void UpstreamPool::onIdleTimeout(UpstreamConnection& c) {
  if (c.lingering_) {
    c.lingering_ = false;
    // Others went out meanwhile and this one is among the `size` kept now: it stays for the
    // rest of its idle timeout.
    if (limit().idle() <= config_.pool.size && !limit().contended() &&
        config_.pool.idle_timeout > kOverflowLinger) {
      c.timer_.arm(config_.pool.idle_timeout - kOverflowLinger);
      return;
    }
    destroy(c);  // the burst is over: not a timeout anyone should be told about
    return;
  }
  if (metrics_) metrics_->timedOut("upstream_idle");
  destroy(c);
}

void UpstreamPool::onDetached(UpstreamConnection& c) {
  // A tunnel may live for hours: its place under size + max_overflow goes to requests now.
  static_cast<ListHook<>&>(c).leaveList();
  c.retired_ = true;
  c.detached_ = true;
  tunnels_.pushBack(c);
  limit().release();
  connectForWaiters();
}

void UpstreamPool::onClosed(UpstreamConnection& c) {
  // Closed by the connection itself (peer closed while idle, or a protocol error).
  destroy(c);
  connectForWaiters();
}

}  // namespace viscount
