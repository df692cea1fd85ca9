#pragma once

// Per worker, per upstream: the keep-alive connection pool. A request asks for a connection and
// gets a stream on one: first on a busy HTTP/2 connection that has room for another stream (up
// to the peer's SETTINGS_MAX_CONCURRENT_STREAMS), then on an idle connection (most recently used
// first: it is the one least likely to have been closed by the upstream), or it waits while a
// new one connects. A connection is idle when it carries no stream; it goes back to the idle
// list only when its last stream ended cleanly; anything else closes it. An HTTP/1 connection
// carries one stream at a time, so for it "room" simply means "idle".
//
// Owned by one worker; never touched from another thread.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "pool/shared_limit.h"
#include "pool/upstream_connection.h"
#include "pool/upstream_source.h"
#include "proxy/http/errors.h"
#include "proxy/net/intrusive_list.h"

namespace viscount {

class MetricsShard;
class UpstreamMetrics;
class EventLog;

// Connection limits (pool.size, pool.max_overflow) hold across workers: `connections` counts every
// open or opening connection of the upstream on every worker, and its capacity is
// size + max_overflow. A connection that comes free with nobody waiting stays idle only while
// fewer than `size` connections of the upstream are idle (over all workers: SQLAlchemy's
// pool_size, the connections kept for reuse) and no worker waits for one; otherwise it closes.
// Counting idle connections, not all of them, matters under a steady load that needs more than
// `size` at once: each freed connection is reused rather than closed and connected again.
class UpstreamPool final : public LimitMember, public UpstreamSource {
 public:
  // Makes the codec for a connection whose transport is up, speaking `protocol`.
  using Factory =
      std::function<std::unique_ptr<UpstreamCodec>(UpstreamConnection&, UpstreamProtocol)>;
  // What an HTTP/2 connection is assumed to carry until its peer's settings say otherwise.
  static constexpr size_t kAssumedHttp2Streams = 100;
  // How long a connection coming free beyond `size` idle ones stays for the next request.
  static constexpr Duration kOverflowLinger = std::chrono::seconds(1);

  UpstreamPool(EventLoop& loop, const UpstreamConfig& config,
               std::vector<ResolvedAddress> addresses, Factory factory,
               std::shared_ptr<SharedLimit> connections, size_t worker, MetricsShard* metrics,
               UpstreamMetrics* upstream_metrics);
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;
  ~UpstreamPool() override;

  // Gets a connection with room for a stream for `waiter`: onPoolReady or onPoolFailure is
  // called, possibly before acquire returns. With every allowed connection full, the waiter
  // waits until one has room (the caller bounds the wait: pool.wait_timeout).
  void acquire(PoolCallbacks& waiter) override;
  // The waiter gave up (client left, timeout): it will not be called back.
  void cancel(PoolCallbacks& waiter) override;
  // Closes idle connections (drain, config swap).
  void closeIdle();

  const UpstreamConfig& config() const { return config_; }
  // https:// upstreams: new connections run a TLS handshake before they count as connected.
  void setTls(std::shared_ptr<const TlsClientContext> tls) { tls_ = std::move(tls); }
  const TlsClientContext* tls() const { return tls_.get(); }
  // The protocol of a connection whose transport is up: the scheme's, or for https:// the one
  // the TLS handshake agreed on (`alpn`), HTTP/1.1 when none was.
  UpstreamProtocol protocolFor(std::string_view alpn) const;
  size_t idleCount() const { return idle_.size(); }
  size_t busyCount() const { return busy_.size() + sharing_.size(); }
  // Busy connections that still have room for more streams (HTTP/2).
  size_t sharingCount() const { return sharing_.size(); }
  size_t connectingCount() const { return connecting_count_; }
  size_t waitingCount() const { return waiting_count_; }
  uint64_t connectionsOpened() const { return opened_; }

 private:
  std::shared_ptr<const TlsClientContext> tls_;
  friend class UpstreamConnection;
  // Connection state changes, called by UpstreamConnection.
  std::unique_ptr<UpstreamCodec> makeCodec(UpstreamConnection& c, std::string_view alpn);
  void onConnected(UpstreamConnection& c);
  void onConnectFailed(UpstreamConnection& c, ErrorCode code, std::string_view detail);
  void onStreamDone(UpstreamConnection& c, bool reusable);
  void onCapacityChanged(UpstreamConnection& c);
  void onClosed(UpstreamConnection& c);
  void onDetached(UpstreamConnection& c);
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
  void makeIdle(UpstreamConnection& c, bool beyond_size);
  // A connection with room again (just connected, a stream ended, the peer allowed more):
  // streams for the oldest waiters while it has room; then, without streams, idle or closed.
  void handOut(UpstreamConnection& c);
  // A busy connection goes to sharing_ while it has room for another stream, else to busy_.
  void place(UpstreamConnection& c);
  // Streams the pool may still start on `c`.
  size_t room(const UpstreamConnection& c) const;
  // No new streams on `c`; it closes when its last stream ends.
  void retire(UpstreamConnection& c);
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
  IntrusiveList<UpstreamConnection> busy_;     // carrying streams, no room for more
  IntrusiveList<UpstreamConnection> sharing_;  // carrying streams, room for more (HTTP/2)
  IntrusiveList<UpstreamConnection> connecting_;
  IntrusiveList<UpstreamConnection> tunnels_;  // detached: closed with the pool at the latest
  IntrusiveList<PoolCallbacks, PoolWaitTag> waiters_;
  size_t waiting_count_ = 0;
  size_t connecting_count_ = 0;
  // Streams a connection that is still connecting is expected to carry: 1 for HTTP/1, the last
  // HTTP/2 connection's limit (kAssumedHttp2Streams before any). Waiters beyond what the
  // connects in flight will carry start more connects.
  size_t streams_per_connection_ = 1;
  uint64_t opened_ = 0;
  bool connecting_for_waiters_ = false;
};

}  // namespace viscount
