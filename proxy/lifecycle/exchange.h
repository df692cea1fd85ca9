#pragma once

// One proxied request, from the client's request head to the last response byte: the phases of
// ARCHITECTURE.md in code. It owns the RequestContext, runs the request phase (filters/), gets a
// slot and an upstream stream, moves bodies both ways with watermark backpressure, maps every
// failure to one answer (proxy/http/errors.h, formatted by filters/local_reply.h) and completes
// exactly once: access-log line, metrics, slot and connection given back.
//
// It is given services (lifecycle/services.h), never the worker: tests/proxy/lifecycle drives it
// with a real loop and fakes for both streams and the pool.
//
// The downstream codec owns the Exchange and deletes it (deferred) after onExchangeComplete.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "filters/local_reply.h"
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
  // Where the request is. It moves forward only, but for one step back: an attempt on the
  // upstream that ends before any response (a failed connect, a reset, a wait given up) returns
  // to kRequest, from where a retry or a local reply goes on.
  enum class Phase : unsigned char {
    kRequest,       // the head is being filtered, or no upstream attempt is in progress
    kAdmission,     // queued for a slot under the upstream's concurrency limit
    kConnecting,    // waiting for a stream on an upstream connection
    kUpstream,      // the request is on an upstream stream; no response head yet
    kResponse,      // the response head went to the client; body and trailers follow
    kTunnel,        // the upstream switched protocols (101): bytes pass both ways unframed
    kResponseDone,  // the whole response is out of our hands, on its way to the client's socket
    kCompleted,     // logged, counted, everything given back: nothing more happens
  };

  Exchange(ExchangeServices& services, WorkerSnapshotPtr snapshot, const ListenerRuntime& listener,
           DownstreamStream& downstream, ExchangeOwner& owner, const PeerInfo& peer,
           const TlsSession* tls, MonoTime start, WallTime start_wall);
  ~Exchange() override;

  // Recycled per worker thread (lifecycle/exchange_memory.cc): one allocation per request, off
  // the general allocator's slow path.
  static void* operator new(size_t size);
  static void operator delete(void* p, size_t size);

  RequestContext& context() { return ctx_; }
  Phase phase() const { return phase_; }
  bool completed() const { return phase_ == Phase::kCompleted; }

  // --- events from the downstream codec ---
  // The request phase, admission and the upstream request.
  void onRequestHeaders(RequestHead& head);
  void onRequestBody(std::string_view data);
  void onRequestTrailers(HeaderList& trailers);
  void onRequestComplete();
  // The response buffer drained below the low watermark.
  void onDownstreamWritable();
  // The client went away or broke the protocol mid-request.
  void onDownstreamReset(ErrorCode code);
  // The client ended its side of a tunnel (a normal end: the upstream's side is closed after
  // what is on its way); anywhere else, like a reset.
  void onDownstreamEnd();
  // Every byte of the response reached the client's socket.
  void onResponseSent();
  // Answer locally (phase 7) before any response byte went out, e.g. a 400 from the parser;
  // once the response has started, the client's stream is reset instead.
  void sendLocalReply(ErrorCode code);

 private:
  void moveTo(Phase next);
  // Leaves the slot queue or the pool's waiters, resets the upstream stream and gives back the
  // concurrency slot, whichever apply; an attempt in progress is over (kRequest).
  void detachUpstream();
  // Copies the headers logging.headers names into the context, for the access log. Inline
  // for the common case, where it names none: called three or four times per request.
  static void captureHeaders(const HeaderList& headers, const std::vector<std::string>& names,
                             RequestContext::LoggedHeaders& out) {
    if (!names.empty()) copyLoggedHeaders(headers, names, out);
  }
  static void copyLoggedHeaders(const HeaderList& headers, const std::vector<std::string>& names,
                                RequestContext::LoggedHeaders& out);
  // Phase 2, the request phase (filters/request_phase.h): false when it answered locally.
  bool requestPhase(RequestHead& head);
  // Admission (filters/request_limiter.h): false when the request was refused.
  bool admission();
  // SlotWaiter (admission: the upstream's concurrency limit)
  void onSlotGranted() override;
  void acquireConnection();
  void reject(ErrorCode code, std::string_view reason);
  void releaseSlot();
  // PoolCallbacks (phase 3)
  void onPoolReady(PooledConnection& connection) override;
  void onPoolFailure(ErrorCode code, std::string_view detail, std::string_view address) override;
  // UpstreamStreamCallbacks (phases 5 and 6)
  void onUpstreamInformational(ResponseHead& head) override;
  void onUpstreamHeaders(ResponseHead& head, bool end_stream) override;
  void onUpstreamBody(std::string_view data, bool end_stream) override;
  void onUpstreamTrailers(HeaderList& trailers) override;
  void onUpstreamReset(ErrorCode code, bool request_sent) override;
  void onUpstreamWritable() override;

  void forwardRequestBody(std::string_view data);
  // A 101 to the upgrade the request asked for: the slot goes back, the idle timeout starts.
  void startTunnel(ResponseHead& head);
  void onTunnelTimer();
  void releaseTunnelUnit();
  void upstreamFailed(ErrorCode code, std::string_view detail);
  // Tries another upstream connection if the failed attempt may be repeated.
  bool retry(ErrorCode code, bool request_sent);
  void upstreamFinished();
  void dropReplayBody();
  static constexpr size_t kMaxReplayBody = 64 * 1024;
  void checkRequestBackpressure();
  void complete();  // phase 8
  // Ends a started response with the reply format's trailers (gRPC); false when it has none.
  bool endResponseWithTrailers(ErrorCode code);
  // Records a gRPC request's grpc-status and grpc-message from what the client is sent.
  void noteGrpcStatus(const HeaderList& fields);
  static constexpr size_t kMaxGrpcMessage = 1024;
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
  // How a local reply is written for this request (chosen from its head).
  const LocalReplyFormat* reply_format_ = &LocalReplyFormat::json();
  std::string local_body_;
  Timer request_timer_;
  Timer wait_timer_;  // queue_timeout in kAdmission, pool.wait_timeout in kConnecting
  Duration budget_{};
  bool unbounded_ = false;   // a gRPC call without grpc-timeout under `grpc_no_deadline: unbounded`
  MonoTime wait_started_{};  // entered the slot queue, or asked the pool
  MonoTime attempt_sent_{};  // the current attempt's head went upstream

  Phase phase_ = Phase::kRequest;
  bool has_slot_ = false;        // from admission until the upstream's response ends
  bool attempt_reused_ = false;  // the current attempt runs on a reused HTTP/1 connection
  bool body_forwarded_ = false;  // body bytes went to an upstream and are no longer held
  bool trailers_forwarded_ = false;
  bool request_complete_ = false;
  bool upstream_paused_ = false;
  bool downstream_paused_ = false;
  bool tunnel_unit_ = false;               // holds a unit of the listener's max_tunnels
  bool response_length_declared_ = false;  // the response head that went out had a content-length
  MonoTime last_tunnel_byte_{};
};

}  // namespace viscount
