#pragma once

// One proxied request, from the client's request head to the last response byte: the phases of
// ARCHITECTURE.md in code. It owns the RequestContext, runs the filters, gets an upstream stream
// from the pool, moves bodies both ways with watermark backpressure, maps every failure to one
// answer (errors.h) and completes exactly once: access-log line, metrics, connection returned.
//
// The downstream codec owns the Exchange and deletes it (deferred) after onExchangeComplete.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "filters/request_limiter.h"
#include "filters/request_phase.h"
#include "pool/upstream_pool.h"
#include "proxy/http/request_context.h"
#include "proxy/http/stream.h"
#include "proxy/http/upstream_request.h"
#include "proxy/lifecycle/services.h"
#include "proxy/lifecycle/worker_snapshot.h"
#include "proxy/net/buffer.h"
#include "proxy/net/timer_queue.h"

namespace viscount {

class Exchange final : public Deletable,
                       public SlotWaiter,
                       public PoolCallbacks,
                       public UpstreamStreamCallbacks {
 public:
  Exchange(ExchangeServices& services, WorkerSnapshotPtr snapshot, const ListenerRuntime& listener,
           DownstreamStream& downstream, ExchangeOwner& owner, const PeerInfo& peer,
           const TlsSession* tls, MonoTime start, WallTime start_wall);
  ~Exchange() override;

  RequestContext& context() { return ctx_; }
  bool completed() const { return completed_; }

  // --- events from the downstream codec ---
  // Phase 2 (request headers) to 4 (upstream request).
  void onRequestHeaders(RequestHead& head);
  void onRequestBody(std::string_view data);
  void onRequestTrailers(HeaderList& trailers);
  void onRequestComplete();
  // The response buffer drained below the low watermark.
  void onDownstreamWritable();
  // The client went away or broke the protocol mid-request.
  void onDownstreamReset(ErrorCode code);
  // Every byte of the response reached the client's socket.
  void onResponseSent();
  // Answer locally (phase 7) before any response byte went out, e.g. a 400 from the parser.
  void sendLocalReply(ErrorCode code);
  // Leaves the slot queue or the pool's waiters, resets the upstream stream and gives back the
  // concurrency slot, whichever apply.
  void detachUpstream();

 private:
  // SlotWaiter (phase 3: the upstream's concurrency limit)
  void onSlotGranted() override;
  void acquireConnection();
  void reject(ErrorCode code, std::string_view reason);
  void releaseSlot();
  // PoolCallbacks (phase 3)
  void onPoolReady(UpstreamConnection& connection) override;
  void onPoolFailure(ErrorCode code, std::string_view detail, std::string_view address) override;
  // UpstreamStreamCallbacks (phases 5 and 6)
  void onUpstreamInformational(ResponseHead& head) override;
  void onUpstreamHeaders(ResponseHead& head, bool end_stream) override;
  void onUpstreamBody(std::string_view data, bool end_stream) override;
  void onUpstreamTrailers(HeaderList& trailers) override;
  void onUpstreamReset(ErrorCode code, bool request_sent) override;
  void onUpstreamWritable() override;

  void forwardRequestBody(std::string_view data);
  void upstreamFailed(ErrorCode code, std::string_view detail);
  // Tries another upstream connection if the failed attempt may be repeated.
  bool retry(ErrorCode code, bool request_sent);
  void upstreamFinished();
  void dropReplayBody();
  static constexpr size_t kMaxReplayBody = 64 * 1024;
  void checkRequestBackpressure();
  void complete();  // phase 8
  static void onRequestTimeout(void* arg);
  static void onWaitTimeout(void* arg);
  // The whole request body is in pending_body_ and may be sent again on a retry.
  bool bodyReplayable() const { return !body_forwarded_ && !trailers_forwarded_; }

  ExchangeServices& services_;
  WorkerSnapshotPtr snapshot_;
  const ListenerRuntime& listener_;
  UpstreamRuntime& upstream_runtime_;
  DownstreamStream& downstream_;
  ExchangeOwner& owner_;
  const PeerInfo& peer_;
  const TlsSession* tls_;  // the client connection's, or null for cleartext
  RequestContext ctx_;

  UpstreamRequest request_;
  UpstreamStream* upstream_ = nullptr;
  Buffer pending_body_;  // request body that arrived before the upstream stream existed
  HeaderList pending_trailers_;
  bool has_pending_trailers_ = false;
  std::string local_body_;
  Timer request_timer_;
  Timer wait_timer_;  // queue_timeout while waiting for a slot, pool.wait_timeout for a connection
  Duration budget_{};

  enum class Waiting : unsigned char { kNone, kSlot, kConnection };
  Waiting waiting_ = Waiting::kNone;
  bool has_slot_ = false;
  bool attempt_reused_ = false;  // the current attempt runs on a reused HTTP/1 connection
  bool body_forwarded_ = false;  // body bytes went to an upstream and are no longer held
  bool trailers_forwarded_ = false;

  bool request_complete_ = false;
  bool response_started_ = false;
  bool response_ended_ = false;
  bool upstream_paused_ = false;
  bool downstream_paused_ = false;
  bool completed_ = false;
};

}  // namespace viscount
