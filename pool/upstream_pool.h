#pragma once

// Per worker, per upstream: the keep-alive connection pool. A request asks for a connection and
// gets an idle one at once (most recently used first: it is the one least likely to have been
// closed by the upstream), or waits while a new one connects. A connection goes back to the idle
// list only when its last response ended cleanly; anything else closes it.
//
// Owned by one worker; never touched from another thread.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "pool/shared_limit.h"
#include "pool/upstream_connection.h"
#include "proxy/errors.h"
#include "proxy/intrusive_list.h"

namespace viscount {

class MetricsShard;
class UpstreamMetrics;
class EventLog;

struct PoolWaitTag {};

// A request waiting for a connection.
class PoolCallbacks : public ListHook<PoolWaitTag> {
 public:
  virtual ~PoolCallbacks() = default;
  virtual void onPoolReady(UpstreamConnection& connection) = 0;
  // `address` is the upstream address a connect was tried on (empty if none was).
  virtual void onPoolFailure(ErrorCode code, std::string_view detail, std::string_view address) = 0;
};

// Connection limits (pool.size, pool.max_overflow) hold across workers: `connections` counts every
// open or opening connection of the upstream on every worker, and its capacity is
// size + max_overflow. A connection that comes free with nobody waiting stays idle only while the
// upstream has at most `size` connections and no worker waits for one; otherwise it closes.
class UpstreamPool final : public LimitMember {
 public:
  using Factory = std::function<std::unique_ptr<UpstreamConnection>(UpstreamPool&, EventLoop&,
                                                                    const ResolvedAddress&)>;

  UpstreamPool(EventLoop& loop, const UpstreamConfig& config,
               std::vector<ResolvedAddress> addresses, Factory factory,
               std::shared_ptr<SharedLimit> connections, size_t worker, MetricsShard* metrics,
               UpstreamMetrics* upstream_metrics);
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;
  ~UpstreamPool() override;

  // Gets a connection for `waiter`: onPoolReady or onPoolFailure is called, possibly before
  // acquire returns. With every allowed connection busy, the waiter waits until one comes free
  // (the caller bounds the wait: pool.wait_timeout).
  void acquire(PoolCallbacks& waiter);
  // The waiter gave up (client left, timeout): it will not be called back.
  void cancel(PoolCallbacks& waiter);
  // Closes idle connections (drain, config swap).
  void closeIdle();

  const UpstreamConfig& config() const { return config_; }
  // https:// upstreams: new connections run a TLS handshake before they count as connected.
  void setTls(std::shared_ptr<const TlsClientContext> tls) { tls_ = std::move(tls); }
  const TlsClientContext* tls() const { return tls_.get(); }
  size_t idleCount() const { return idle_.size(); }
  size_t busyCount() const { return busy_.size(); }
  size_t connectingCount() const { return connecting_count_; }
  size_t waitingCount() const { return waiting_count_; }
  uint64_t connectionsOpened() const { return opened_; }

 private:
  std::shared_ptr<const TlsClientContext> tls_;
  friend class UpstreamConnection;
  // Connection state changes, called by UpstreamConnection.
  void onConnected(UpstreamConnection& c);
  void onConnectFailed(UpstreamConnection& c, ErrorCode code, std::string_view detail);
  void onStreamDone(UpstreamConnection& c, bool reusable);
  void onClosed(UpstreamConnection& c);
  void onIdleTimeout(UpstreamConnection& c);

  // LimitMember
  void onUnitsAvailable() override { connectForWaiters(); }
  void onUnitWanted() override;

  // Opens connections while waiters outnumber connects in flight and the limit allows.
  void connectForWaiters();
  void startConnect();
  PoolCallbacks* popWaiter();
  void countWaiter(int delta);
  void giveTo(UpstreamConnection& c, PoolCallbacks& waiter);
  void makeIdle(UpstreamConnection& c);
  // A connection that is free again (just connected, or its exchange ended): to the oldest
  // waiter, else idle.
  void handOut(UpstreamConnection& c);
  bool expired(const UpstreamConnection& c) const;  // older than pool.recycle
  void destroy(UpstreamConnection& c);
  void setState(UpstreamConnection& c, UpstreamConnection::State s);
  bool usable(UpstreamConnection& c);

  EventLoop& loop_;
  const UpstreamConfig config_;
  std::vector<ResolvedAddress> addresses_;
  size_t next_address_ = 0;
  Factory factory_;
  MetricsShard* metrics_;
  UpstreamMetrics* upstream_metrics_;

  IntrusiveList<UpstreamConnection> idle_;
  IntrusiveList<UpstreamConnection> busy_;
  IntrusiveList<UpstreamConnection> connecting_;
  IntrusiveList<PoolCallbacks, PoolWaitTag> waiters_;
  size_t waiting_count_ = 0;
  size_t connecting_count_ = 0;
  uint64_t opened_ = 0;
  bool connecting_for_waiters_ = false;
};

}  // namespace viscount
