#include "proxy/lifecycle/exchange.h"

#include <cassert>

#include "filters/grpc_deadline.h"
#include "filters/header_sanitizer.h"
#include "filters/id_generator.h"
#include "proxy/http/grpc_wire.h"
#include "proxy/http/header_tokens.h"
#include "proxy/lifecycle/request_buffers.h"
#include "telemetry/access_log.h"
#include "telemetry/event_log.h"
#include "telemetry/metrics.h"

namespace viscount {

Exchange::Exchange(ExchangeServices& services, WorkerSnapshotPtr snapshot,
                   const ListenerRuntime& listener, DownstreamStream& downstream,
                   ExchangeOwner& owner, const PeerInfo& peer, const TlsSession* tls,
                   MonoTime start, WallTime start_wall)
    : services_(services),
      snapshot_(std::move(snapshot)),
      listener_(listener),
      upstream_runtime_(*listener.upstream),
      downstream_(downstream),
      owner_(owner),
      peer_(peer),
      tls_(tls),
      pending_body_(&services.loop.buffers()),
      request_timer_(services.loop.timers(), &Exchange::onRequestTimeout, this),
      wait_timer_(services.loop.timers(), &Exchange::onWaitTimeout, this) {
  services.request_buffers.lend(ctx_, request_);
  ctx_.start = start;
  ctx_.start_wall = start_wall;
  ctx_.trail.setOrigin(start);
  PeerAddress::TextBuffer text;
  ctx_.client_address.assign(peer.address.text(text));
  if (tls != nullptr) {
    ctx_.tls_version = tls->version();
    ctx_.client_cert_verified = tls->peerVerified();
  }
  ctx_.upstream = upstream_runtime_.config->name;
}

Exchange::~Exchange() {
  // Leave the pool's waiter list now: the snapshot member, which may hold the last reference to
  // the pool, dies before the list hook base does.
  detachUpstream();
  services_.request_buffers.reclaim(ctx_, request_);
}

void Exchange::moveTo(Phase next) {
  // Forward, or back to kRequest from an attempt that ended before any response.
  assert(next > phase_ || (next == Phase::kRequest && phase_ < Phase::kResponse) ||
         next == Phase::kCompleted);
  phase_ = next;
}

void Exchange::detachUpstream() {
  if (phase_ == Phase::kAdmission) upstream_runtime_.limiter->cancel(*this);
  if (phase_ == Phase::kConnecting) upstream_runtime_.source->cancel(*this);
  wait_timer_.cancel();
  if (upstream_) {
    upstream_->reset();  // calls nothing back
    upstream_ = nullptr;
  }
  if (phase_ > Phase::kRequest && phase_ < Phase::kResponse) moveTo(Phase::kRequest);
  releaseSlot();
}

void Exchange::releaseSlot() {
  if (!has_slot_) return;
  has_slot_ = false;
  // May hand the slot to a queued request at once, which then runs its phase 3.
  upstream_runtime_.limiter->release();
}

// ---- phase 2: request headers (filters/request_phase.h), then admission ---------------------

void Exchange::copyLoggedHeaders(const HeaderList& headers, const std::vector<std::string>& names,
                                 RequestContext::LoggedHeaders& out) {
  out.clear();
  for (const std::string& name : names) {
    std::optional<std::string> value;
    for (const HeaderField& field : headers.fields()) {
      if (field.removed || !equalsIgnoreCase(field.name, name)) continue;
      if (value) {
        value->append(", ");
        value->append(field.value);
      } else {
        value.emplace(field.value);
      }
    }
    out.emplace_back(name, std::move(value));
  }
}

void Exchange::onRequestHeaders(RequestHead& head) {
  ctx_.grpc = isGrpcRequest(head.headers);
  reply_format_ = &LocalReplyFormat::forRequest(head, ctx_.grpc);
  ctx_.method.assign(head.method);
  ctx_.path.assign(head.target);
  ctx_.protocol = head.protocol;
  captureHeaders(head.headers, snapshot_->config->logging.request_headers,
                 ctx_.logged_request_headers);
  if (!requestPhase(head)) return;
  // An upgrade may become a tunnel: it needs a place under the listener's max_tunnels before
  // it goes upstream (given back if the upstream answers anything but 101).
  if (!head.upgrade.empty() && listener_.tunnels) {
    if (!listener_.tunnels->tryAcquire()) {
      reject(ErrorCode::kOverloaded, "max_tunnels");
      return;
    }
    tunnel_unit_ = true;
  }
  // The upstream request is prepared now: the client's buffer holding the head is reused for
  // the body.
  request_.assign(head);
  request_complete_ = !head.hasBody();
  if (!unbounded_) request_timer_.arm(budget_);
  if (!admission()) return;
  // A client waiting for 100 Continue would otherwise hold its body back while we queue.
  if (head.expect_continue && head.hasBody()) downstream_.sendContinue();
  if (has_slot_) acquireConnection();
}

bool Exchange::requestPhase(RequestHead& head) {
  RequestFilterInput input{.context = *snapshot_->context_filter,
                           .trusted = peer_.trusted,
                           .client_ip = {},
                           .certificate_user = std::nullopt,
                           .deadline_header = upstream_runtime_.config->timeouts.deadline_header,
                           .budget = upstream_runtime_.config->timeouts.request,
                           .upstream_authority = upstream_runtime_.authority};
  std::string certificate_user;  // outlives the filters' use of it
  if (const auto& tls = listener_.config->tls; tls && tls->user_id_from_certificate) {
    certificate_user = tls_ != nullptr ? tls_->peerCommonName() : "";
    input.certificate_user = certificate_user;
  }
  PeerAddress::TextBuffer ip;
  input.client_ip = peer_.address.ip(ip);
  budget_ = filterRequestHead(head, ctx_, services_.ids, input);
  if (ctx_.grpc) {
    const GrpcDeadline deadline =
        takeGrpcTimeout(head.headers, budget_, upstream_runtime_.config->timeouts.grpc_unbounded);
    if (deadline.malformed) {
      sendLocalReply(ErrorCode::kBadRequest);
      return false;
    }
    unbounded_ = !deadline.budget;
    if (deadline.budget) budget_ = *deadline.budget;
  }

  const uint64_t body_limit = listener_.config->limits.max_request_body_size;
  if (body_limit != 0 && head.content_length && *head.content_length > body_limit) {
    sendLocalReply(ErrorCode::kBodyTooLarge);
    return false;
  }
  return true;
}

bool Exchange::admission() {
  // A slot under the upstream's concurrency limit now, a place in its queue, or a local 503.
  switch (upstream_runtime_.limiter->admit(*this)) {
    case RequestLimiter::Admission::kGranted:
      has_slot_ = true;
      ctx_.queue_time = std::chrono::nanoseconds(0);
      return true;
    case RequestLimiter::Admission::kQueued:
      moveTo(Phase::kAdmission);
      wait_started_ = Clock::now();
      ctx_.trail.add(TrailEvent::kQueued, wait_started_);
      wait_timer_.arm(upstream_runtime_.config->limits.queue_timeout);
      return true;
    case RequestLimiter::Admission::kRejected:
      reject(ErrorCode::kOverloaded, "queue_full");
      return false;
  }
  return false;
}

void Exchange::onSlotGranted() {
  wait_timer_.cancel();
  has_slot_ = true;
  const MonoTime now = Clock::now();
  ctx_.queue_time = now - wait_started_;
  ctx_.trail.add(TrailEvent::kSlotGranted, now);
  acquireConnection();
}

void Exchange::acquireConnection() {
  moveTo(Phase::kConnecting);
  wait_started_ = Clock::now();
  ctx_.trail.add(TrailEvent::kPoolWait, wait_started_);
  // The pool may answer before acquire() returns; the wait is bounded only if it did not.
  upstream_runtime_.source->acquire(*this);
  if (phase_ == Phase::kConnecting && !wait_timer_.armed()) {
    wait_timer_.arm(upstream_runtime_.config->pool.wait_timeout);
  }
}

void Exchange::onWaitTimeout(void* arg) {
  auto* self = static_cast<Exchange*>(arg);
  self->ctx_.trail.add(
      TrailEvent::kTimeout, Clock::now(),
      self->phase_ == Phase::kAdmission ? ErrorCode::kOverloaded : ErrorCode::kPoolTimeout);
  if (self->phase_ == Phase::kAdmission) {
    self->services_.metrics.timedOut("queue");
    self->reject(ErrorCode::kOverloaded, "queue_timeout");
  } else if (self->phase_ == Phase::kConnecting) {
    self->services_.metrics.timedOut("pool_wait");
    self->reject(ErrorCode::kPoolTimeout, "pool_timeout");
  }
}

void Exchange::reject(ErrorCode code, std::string_view reason) {
  services_.metrics.rejected(reason);
  sendLocalReply(code);
}

void Exchange::onRequestBody(std::string_view data) {
  if (completed()) return;
  ctx_.bytes_in += data.size();
  if (phase_ == Phase::kTunnel) {
    last_tunnel_byte_ = Clock::now();
    forwardRequestBody(data);  // no body limit: a tunnel is not a request body
    return;
  }
  if (!request_.upgrade().empty()) {
    // Tunnel bytes ahead of the answer (an HTTP/2 client's DATA after its extended CONNECT):
    // held until the 101, never sent into an upgrade the upstream may refuse.
    if (phase_ < Phase::kResponse) {
      pending_body_.append(data);
      checkRequestBackpressure();
    }
    return;
  }
  const uint64_t body_limit = listener_.config->limits.max_request_body_size;
  if (body_limit != 0 && ctx_.bytes_in > body_limit) {
    if (phase_ < Phase::kResponse) {
      sendLocalReply(ErrorCode::kBodyTooLarge);
    } else if (phase_ == Phase::kResponse) {
      ctx_.error = ErrorCode::kBodyTooLarge;
      downstream_.resetStream(ErrorCode::kBodyTooLarge);
      complete();
    }
    return;
  }
  if (phase_ == Phase::kResponseDone) return;  // the upstream answered; the rest is discarded
  forwardRequestBody(data);
}

void Exchange::forwardRequestBody(std::string_view data) {
  if (upstream_) {
    body_forwarded_ = true;
    upstream_->sendBody(data, false);
  } else {
    pending_body_.append(data);
  }
  checkRequestBackpressure();
}

void Exchange::checkRequestBackpressure() {
  const bool held = !request_.upgrade().empty() && phase_ < Phase::kTunnel;
  const size_t queued =
      upstream_ && !held ? upstream_->bufferedRequestBytes() : pending_body_.size();
  if (!downstream_paused_ && queued > kHighWatermark) {
    downstream_paused_ = true;
    downstream_.readDisable(true);
  } else if (downstream_paused_ && queued < kLowWatermark) {
    downstream_paused_ = false;
    downstream_.readDisable(false);
  }
}

void Exchange::onRequestTrailers(HeaderList& trailers) {
  if (completed()) return;
  request_complete_ = true;
  if (phase_ == Phase::kResponseDone) return;
  sanitizeTrailers(trailers);
  if (upstream_) {
    trailers_forwarded_ = true;
    upstream_->sendTrailers(trailers);
  } else {
    pending_trailers_ = std::move(trailers);
    has_pending_trailers_ = true;
  }
}

void Exchange::onRequestComplete() {
  if (completed()) return;
  if (phase_ == Phase::kTunnel) {
    // An HTTP/2 client ended its side of the tunnel (END_STREAM): the upstream gets what is on
    // its way and is closed; the client's stream ends once what the upstream sent is out.
    if (upstream_) {
      upstream_->sendBody({}, true);
      upstream_ = nullptr;
    }
    upstreamFinished();
    downstream_.sendResponseBody({}, true);
    return;
  }
  request_complete_ = true;
  if (upstream_ && phase_ != Phase::kResponseDone) upstream_->sendBody({}, true);
}

// ---- phase 3: upstream connection ----------------------------------------------------------

void Exchange::onPoolReady(PooledConnection& connection) {
  wait_timer_.cancel();
  moveTo(Phase::kUpstream);
  ++ctx_.attempts;
  const MonoTime now = Clock::now();
  attempt_sent_ = now;
  ctx_.pool_wait_time =
      ctx_.pool_wait_time.value_or(std::chrono::nanoseconds(0)) + (now - wait_started_);
  if (connection.streamsStarted() == 0) {
    ctx_.connect_time = connection.connectTime();
    ctx_.trail.add(TrailEvent::kConnectionNew, now, ErrorCode::kNone,
                   static_cast<uint64_t>(ctx_.connect_time->count() / 1000));
  } else {
    ctx_.connect_time.reset();
    const auto age =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - connection.createdAt());
    ctx_.trail.add(TrailEvent::kConnectionReused, now, ErrorCode::kNone,
                   static_cast<uint64_t>(age.count()),
                   static_cast<uint32_t>(connection.streamsStarted()));
  }
  ctx_.upstream_address = connection.addressText();
  // A reused HTTP/1 connection may have been closed by the upstream just as the request went
  // out (the keep-alive race): a reset there counts as unseen. An HTTP/2 upstream says itself
  // which streams it never processed (REFUSED_STREAM, GOAWAY), and may say it of any stream.
  attempt_reused_ = !connection.multiplexed() && connection.requestsServed() > 0;
  const bool refusable = attempt_reused_ || connection.multiplexed();
  upstream_ = &connection.newStream(*this);
  if (!ctx_.upstream_start) ctx_.upstream_start = now;

  // Phase 4: the upstream request, with whatever body arrived while we waited, and what is
  // left of the budget.
  const std::string& deadline_header = upstream_runtime_.config->timeouts.deadline_header;
  if (!unbounded_) {
    const auto spent = std::chrono::duration_cast<Duration>(now - ctx_.start);
    const auto left = static_cast<uint64_t>(std::max<int64_t>(1, (budget_ - spent).count()));
    if (!deadline_header.empty()) request_.setDeadline(deadline_header, left);
    if (ctx_.grpc) request_.setGrpcTimeout(left);
  }
  // An upgrade's early bytes (pending_body_) wait for the 101.
  const bool body_pending =
      request_.upgrade().empty() && (!pending_body_.empty() || has_pending_trailers_);
  upstream_->sendHead(request_, request_complete_ && !body_pending);
  if (!pending_body_.empty() && request_.upgrade().empty()) {
    upstream_->sendBody(pending_body_.view(), request_complete_ && !has_pending_trailers_);
    // A whole small body of a request that may be retried is kept until the response starts:
    // a pooled connection the upstream closed meanwhile, or a stream it refused, then costs a
    // retry, not an error.
    const bool keep = request_complete_ && !has_pending_trailers_ && refusable &&
                      pending_body_.size() <= kMaxReplayBody && request_.idempotent() &&
                      ctx_.attempts <= upstream_runtime_.config->retries.attempts;
    if (!keep) {
      body_forwarded_ = true;
      pending_body_.release();
    }
  }
  if (has_pending_trailers_) {
    has_pending_trailers_ = false;
    trailers_forwarded_ = true;
    upstream_->sendTrailers(pending_trailers_);
  }
  checkRequestBackpressure();
}

void Exchange::onPoolFailure(ErrorCode code, std::string_view detail, std::string_view address) {
  wait_timer_.cancel();
  const MonoTime now = Clock::now();
  ctx_.pool_wait_time =
      ctx_.pool_wait_time.value_or(std::chrono::nanoseconds(0)) + (now - wait_started_);
  ctx_.trail.add(TrailEvent::kAttemptFailed, now, code);
  moveTo(Phase::kRequest);  // the pool let go of us: the attempt is over
  // No address to try is not an attempt, and trying again would find none either.
  if (!address.empty()) {
    ++ctx_.attempts;  // a connect was tried: that is an attempt, even though it failed
    ctx_.upstream_address.assign(address);
    if (retry(code, false)) return;
  }
  upstreamFailed(code, detail);
}

bool Exchange::retry(ErrorCode code, bool request_sent) {
  // Only idempotent methods, only requests whose body we still hold in full, and only attempts
  // the upstream never saw: a connect that failed or timed out, a reset before anything was
  // written, or a pooled connection the upstream had closed (it ends before any response byte).
  if (phase_ >= Phase::kResponse || !request_.idempotent() || !bodyReplayable() ||
      ctx_.attempts > upstream_runtime_.config->retries.attempts) {
    return false;
  }
  if (code != ErrorCode::kUpstreamConnectFailed && code != ErrorCode::kUpstreamConnectTimeout &&
      code != ErrorCode::kUpstreamReset) {
    return false;
  }
  if (request_sent && !(code == ErrorCode::kUpstreamReset && attempt_reused_)) return false;
  EventLog& events = services_.events;
  if (events.enabled(LogLevel::kDebug)) {
    events.log(LogLevel::kDebug, "upstream_retry",
               {{"upstream", std::string_view(ctx_.upstream)},
                {"error", errorInfo(code).code},
                {"attempts", static_cast<uint64_t>(ctx_.attempts)}},
               ctx_.request_id);
  }
  services_.metrics.retried(*upstream_runtime_.metrics);
  ctx_.trail.add(TrailEvent::kRetry, Clock::now(), ErrorCode::kNone, ctx_.attempts + 1);
  acquireConnection();
  return true;
}

// ---- phases 5 and 6: response --------------------------------------------------------------

void Exchange::onUpstreamInformational(ResponseHead& head) {
  // We answered Expect: 100-continue ourselves; other 1xx (103 Early Hints) pass through.
  if (completed()) return;
  dropReplayBody();
  if (head.status == 100) return;
  sanitizeResponseHeaders(head);
  downstream_.sendInformational(head);
}

void Exchange::onUpstreamHeaders(ResponseHead& head, bool end_stream) {
  if (completed()) return;
  if (head.status == 101) {
    startTunnel(head);
    return;
  }
  releaseTunnelUnit();  // an upgrade the upstream refused: an ordinary response
  dropReplayBody();
  moveTo(Phase::kResponse);
  ctx_.status = head.status;
  response_length_declared_ = head.content_length.has_value();
  if (end_stream) noteGrpcStatus(head.headers);  // a trailers-only answer
  captureHeaders(head.headers, snapshot_->config->logging.response_headers,
                 ctx_.logged_response_headers);
  const MonoTime now = Clock::now();
  ctx_.upstream_headers_time = now - attempt_sent_;
  ctx_.trail.add(TrailEvent::kResponseHead, now, ErrorCode::kNone,
                 static_cast<uint64_t>(head.status));
  // Response filters run in reverse order: sanitizing, then the context ids echoed.
  sanitizeResponseHeaders(head);
  snapshot_->context_filter->onResponseHeaders(head, ctx_);
  downstream_.sendResponseHead(head, end_stream);
  if (end_stream) upstreamFinished();
}

void Exchange::startTunnel(ResponseHead& head) {
  // Codecs pass a 101 only to a request that asked for an upgrade; it must switch to one of the
  // protocols asked for (RFC 9110 section 7.8), else it is no answer to this request.
  const HeaderField* upgrade = head.headers.find("upgrade");
  const std::string_view chosen = upgrade != nullptr ? trimOws(upgrade->value) : "";
  bool asked = false;
  forEachListElement(request_.upgrade(), [&](std::string_view token) {
    if (!chosen.empty() && equalsIgnoreCase(token, chosen)) asked = true;
  });
  if (!asked) {
    upstreamFailed(ErrorCode::kUpstreamProtocolError, "101 to a protocol the request did not ask");
    return;
  }
  moveTo(Phase::kTunnel);
  // A tunnel may stay open for hours: it gives back its request slot (a thousand websockets
  // must not starve ordinary requests), and the request timeout covered its handshake only.
  releaseSlot();
  request_timer_.cancel();
  ctx_.status = 101;
  ctx_.upgrade.assign(chosen);
  ctx_.bytes_in = pending_body_.size();  // from here on: the tunnel's bytes
  ctx_.bytes_out = 0;
  sanitizeResponseHeaders(head);
  snapshot_->context_filter->onResponseHeaders(head, ctx_);
  head.upgrade = ctx_.upgrade;
  services_.metrics.tunnelOpened(listener_.config->name);
  last_tunnel_byte_ = Clock::now();
  request_timer_.arm(listener_.config->timeouts.tunnel_idle);
  downstream_.sendResponseHead(head, false);
  if (!pending_body_.empty() && upstream_ && phase_ == Phase::kTunnel) {
    upstream_->sendBody(pending_body_.view(), false);
    pending_body_.release();
    checkRequestBackpressure();
  }
}

void Exchange::onTunnelTimer() {
  // Armed once for the whole idle timeout, and again for what is left of it after the last
  // byte: no timer work per byte.
  const Duration idle = listener_.config->timeouts.tunnel_idle;
  const auto quiet = std::chrono::duration_cast<Duration>(Clock::now() - last_tunnel_byte_);
  if (quiet < idle) {
    request_timer_.arm(std::max(Duration(1), idle - quiet));
    return;
  }
  services_.metrics.timedOut("tunnel_idle");
  ctx_.error = ErrorCode::kTunnelIdleTimeout;
  downstream_.resetStream(ErrorCode::kTunnelIdleTimeout);
  complete();
}

void Exchange::releaseTunnelUnit() {
  if (!tunnel_unit_) return;
  tunnel_unit_ = false;
  listener_.tunnels->release();
}

void Exchange::onUpstreamBody(std::string_view data, bool end_stream) {
  if (completed()) return;
  ctx_.bytes_out += data.size();
  if (phase_ == Phase::kTunnel) last_tunnel_byte_ = Clock::now();
  downstream_.sendResponseBody(data, end_stream);
  if (end_stream) {
    upstreamFinished();
    return;
  }
  if (!upstream_paused_ && upstream_ && downstream_.bufferedResponseBytes() > kHighWatermark) {
    upstream_paused_ = true;
    upstream_->readDisable(true);
  }
}

void Exchange::onUpstreamTrailers(HeaderList& trailers) {
  if (completed()) return;
  sanitizeTrailers(trailers);
  noteGrpcStatus(trailers);
  downstream_.sendResponseTrailers(trailers);
  upstreamFinished();
}

void Exchange::onUpstreamWritable() {
  if (upstream_) checkRequestBackpressure();
}

void Exchange::onDownstreamWritable() {
  if (upstream_paused_ && upstream_ && downstream_.bufferedResponseBytes() < kLowWatermark) {
    upstream_paused_ = false;
    upstream_->readDisable(false);
  }
}

void Exchange::dropReplayBody() {
  // The upstream answered: the attempt cannot be repeated, so its copy of the body can go.
  if (!body_forwarded_ && !pending_body_.empty() && upstream_) {
    body_forwarded_ = true;
    pending_body_.release();
  }
}

void Exchange::upstreamFinished() {
  // The upstream connection returns itself to the pool after this callback.
  releaseSlot();
  upstream_ = nullptr;
  upstream_paused_ = false;
  moveTo(Phase::kResponseDone);
  ctx_.upstream_end = Clock::now();
  request_timer_.cancel();
  if (downstream_paused_) {
    downstream_paused_ = false;
    downstream_.readDisable(false);
  }
}

// ---- phase 7: errors -----------------------------------------------------------------------

void Exchange::onUpstreamReset(ErrorCode code, bool request_sent) {
  upstream_ = nullptr;
  ctx_.trail.add(TrailEvent::kAttemptFailed, Clock::now(), code);
  if (phase_ == Phase::kUpstream) moveTo(Phase::kRequest);  // the attempt is over
  if (retry(code, request_sent)) return;
  upstreamFailed(code, "upstream connection failed");
}

void Exchange::onRequestTimeout(void* arg) {
  auto* self = static_cast<Exchange*>(arg);
  if (self->phase_ == Phase::kTunnel) {
    self->onTunnelTimer();
    return;
  }
  if (self->phase_ >= Phase::kResponseDone) return;
  self->services_.metrics.timedOut("upstream_request");
  self->ctx_.trail.add(TrailEvent::kTimeout, Clock::now(), ErrorCode::kUpstreamTimeout);
  self->upstreamFailed(ErrorCode::kUpstreamTimeout, "request timeout");
}

void Exchange::upstreamFailed(ErrorCode code, std::string_view detail) {
  if (completed()) return;
  detachUpstream();
  const auto now = Clock::now();
  if (ctx_.upstream_start) ctx_.upstream_end = now;
  EventLog& events = services_.events;
  if (events.enabled(LogLevel::kWarn)) {
    events.log(LogLevel::kWarn, "upstream_error",
               {{"upstream", std::string_view(ctx_.upstream)},
                {"error", errorInfo(code).code},
                {"detail", detail},
                {"upstream_address", std::string_view(ctx_.upstream_address)}},
               ctx_.request_id);
  }
  sendLocalReply(code);  // or, once the response has started, a reset of the client stream
}

void Exchange::sendLocalReply(ErrorCode code) {
  if (completed()) return;
  if (phase_ == Phase::kResponse && endResponseWithTrailers(code)) return;
  if (phase_ >= Phase::kResponse) {
    ctx_.error = code;
    downstream_.resetStream(code);
    complete();
    return;
  }
  detachUpstream();
  request_timer_.cancel();

  ctx_.error = code;
  snapshot_->context_filter->ensureIds(ctx_, services_.ids);  // the body names the request id
  ResponseHead head;
  local_body_.clear();
  reply_format_->format(code, ctx_, head, local_body_);
  ctx_.status = head.status;
  ctx_.trail.add(TrailEvent::kLocalReply, Clock::now(), code, static_cast<uint64_t>(head.status));
  snapshot_->context_filter->onResponseHeaders(head, ctx_);

  moveTo(Phase::kResponseDone);  // before sending: the last byte may complete() at once
  if (local_body_.empty()) {
    noteGrpcStatus(head.headers);  // the head is the whole answer
    downstream_.sendResponseHead(head, true);
    return;
  }
  head.content_length = local_body_.size();
  if (!downstream_.isHeadRequest()) ctx_.bytes_out += local_body_.size();
  downstream_.sendResponseHead(head, false);
  downstream_.sendResponseBody(local_body_, true);
}

bool Exchange::endResponseWithTrailers(ErrorCode code) {
  // A gRPC response whose head went out still ends in a status the client reads, not a reset.
  // Not when that head declared a content-length: ending the stream short of it would make a
  // malformed response (RFC 9113 §8.1.1), so the client gets the reset instead.
  if (response_length_declared_) return false;
  HeaderList trailers;
  if (!reply_format_->formatTrailers(code, ctx_, trailers)) return false;
  detachUpstream();
  request_timer_.cancel();
  ctx_.error = code;
  if (ctx_.upstream_start) ctx_.upstream_end = Clock::now();
  noteGrpcStatus(trailers);
  moveTo(Phase::kResponseDone);  // before sending: the last byte may complete() at once
  downstream_.sendResponseTrailers(trailers);
  return true;
}

void Exchange::noteGrpcStatus(const HeaderList& fields) {
  if (!ctx_.grpc) return;
  const HeaderField* status = fields.find("grpc-status");
  if (status == nullptr) return;
  const std::optional<int> code = parseGrpcStatus(status->value);
  if (!code) return;
  ctx_.grpc_status = *code;
  ctx_.grpc_message.clear();
  if (*code == 0) return;
  if (const HeaderField* message = fields.find("grpc-message")) {
    appendGrpcPercentDecoded(ctx_.grpc_message, message->value, kMaxGrpcMessage);
  }
}

// ---- downstream lifecycle ------------------------------------------------------------------

void Exchange::onDownstreamReset(ErrorCode code) {
  if (completed()) return;
  ctx_.trail.add(TrailEvent::kClientGone, Clock::now(), code);
  if (ctx_.error == ErrorCode::kNone) ctx_.error = code;
  complete();
}

void Exchange::onDownstreamEnd() {
  if (phase_ != Phase::kTunnel) {
    onDownstreamReset(ErrorCode::kClientDisconnected);
    return;
  }
  if (upstream_) {
    // The codec flushes what the client sent, then closes; it reports nothing more.
    upstream_->sendBody({}, true);
    upstream_ = nullptr;
  }
  complete();
}

void Exchange::onResponseSent() {
  if (phase_ == Phase::kResponseDone) complete();
}

// ---- phase 8: complete, exactly once -------------------------------------------------------

void Exchange::complete() {
  if (completed()) return;
  request_timer_.cancel();
  detachUpstream();  // by the phase it leaves: the slot queue, the pool's waiters, the stream
  moveTo(Phase::kCompleted);
  ctx_.end = Clock::now();
  if (ctx_.upstream_start && !ctx_.upstream_end) ctx_.upstream_end = ctx_.end;
  if (ctx_.request_id.empty()) snapshot_->context_filter->ensureIds(ctx_, services_.ids);
  releaseTunnelUnit();
  if (!ctx_.upgrade.empty()) {
    services_.metrics.tunnelClosed(listener_.config->name, ctx_.bytes_in, ctx_.bytes_out);
  }
  // A line names every header it was asked for, null when no such head arrived.
  static const HeaderList kNoHeaders;
  const LoggingConfig& logging = snapshot_->config->logging;
  if (ctx_.logged_request_headers.empty())
    captureHeaders(kNoHeaders, logging.request_headers, ctx_.logged_request_headers);
  if (ctx_.logged_response_headers.empty())
    captureHeaders(kNoHeaders, logging.response_headers, ctx_.logged_response_headers);
  services_.access_log.append(ctx_);
  services_.metrics.requestCompleted(*upstream_runtime_.metrics, ctx_);
  owner_.onExchangeComplete();
}

}  // namespace viscount
