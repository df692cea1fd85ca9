#include "proxy/http2/http2_client.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>
#include <utility>

#include "proxy/http/upstream_request.h"
#include "proxy/http2/content_length.h"

namespace viscount {
namespace {

Http2ClientCodec& codecOf(void* user_data) {
  return *static_cast<Http2ClientCodec*>(user_data);
}

}  // namespace

// ---- a stream ----------------------------------------------------------------------------------

Http2ClientStream::Http2ClientStream(Http2ClientCodec& codec, UpstreamStreamCallbacks& callbacks)
    : codec_(codec), callbacks_(&callbacks), body_(&codec.connection_.loop().buffers()) {}

void Http2ClientStream::sendHead(const UpstreamRequest& request, bool end_stream) {
  if (closed_) return;
  h2::HeaderBlock& block = codec_.request_block_;
  block.clear();
  block.addLower(":method", request.method());
  block.addLower(":scheme", codec_.connection_.tls() != nullptr ? "https" : "http");
  if (!request.authority().empty()) block.addLower(":authority", request.authority());
  block.addLower(":path", request.target());
  // Names lowercased, hop-by-hop and connection-specific fields left out.
  request.forEachHeader([&](std::string_view name, std::string_view value) {
    if (!equalsIgnoreCase(name, "host")) block.add(name, value);
  });
  // The one connection-specific field HTTP/2 allows (RFC 9113 section 8.2.2); an HTTP/1 hop
  // would have to name it in Connection as well, so only HTTP/2 upstreams get it.
  if (request.te_trailers) block.addLower("te", "trailers");
  if (!request.chunked && request.content_length) {
    // As for HTTP/1: a zero length is only worth saying for methods that normally carry a body.
    const std::string_view m = request.method();
    if (*request.content_length > 0 || m == "POST" || m == "PUT" || m == "PATCH") {
      block.addContentLength(*request.content_length);
    }
  }
  if (end_stream) body_.end();
  request_done_ = end_stream;
  nghttp2_data_provider provider{};
  provider.source.ptr = this;
  provider.read_callback = &Http2ClientStream::readBody;
  id_ = nghttp2_submit_request(codec_.session_, nullptr, block.data(), block.size(),
                               end_stream ? nullptr : &provider, this);
  if (id_ < 0) {
    // No stream id left (or no memory): it ends before it began, reported once this turn ends.
    closed_ = true;
    close_code_ = NGHTTP2_REFUSED_STREAM;
    leaveList();
    codec_.closed_.pushBack(*this);
  }
  codec_.scheduleWrite();
}

void Http2ClientStream::sendBody(std::string_view data, bool end_stream) {
  if (body_.ended() || closed_) return;  // nothing more goes after the end (or after a reset)
  body_.append(data);
  if (body_.size() >= kLowWatermark) body_.watchLowWatermark();
  if (end_stream) body_.end();
  resumeBody();
}

void Http2ClientStream::sendTrailers(HeaderList& trailers) {
  if (body_.ended() || closed_) return;
  // The fields point into the client's receive buffer, which is reused before nghttp2 asks for
  // them: the body source keeps its own copy.
  body_.endWithTrailers(trailers);
  resumeBody();
}

void Http2ClientStream::resumeBody() {
  if (!closed_) body_.resume(codec_.session_, id_);
  codec_.scheduleWrite();
}

ssize_t Http2ClientStream::readBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                                    size_t length, uint32_t* data_flags,
                                    nghttp2_data_source* source, void*) {
  auto* self = static_cast<Http2ClientStream*>(source->ptr);
  // Deferred until sendBody resumes it, when nothing is waiting and the body has not ended.
  const ssize_t n = self->body_.read(session, stream_id, buf, length, data_flags);
  if ((*data_flags & NGHTTP2_DATA_FLAG_EOF) != 0) self->request_done_ = true;
  if (n >= 0 && self->body_.belowLowWatermark()) self->codec_.writable_.push_back(self);
  return n;
}

void Http2ClientStream::reset() {
  callbacks_ = nullptr;
  if (closed_ || codec_.failed_ || id_ < 0) return;
  // The stream closes once the RST_STREAM is out (or its HEADERS, not sent yet, are dropped).
  nghttp2_submit_rst_stream(codec_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
  codec_.scheduleWrite();
}

void Http2ClientStream::readDisable(bool disable) {
  response_window_.pause(disable);
  if (disable || closed_ || codec_.failed_) return;
  // What arrived while paused goes back into the stream's window: the upstream may send again.
  if (response_window_.repay(codec_.session_, id_)) codec_.scheduleWrite();
}

UpstreamStreamCallbacks* Http2ClientStream::takeCallbacks() {
  UpstreamStreamCallbacks* cb = callbacks_;
  callbacks_ = nullptr;
  // The upstream answered before our request ended: the rest of it is not wanted.
  if (!request_done_ && !closed_) {
    nghttp2_submit_rst_stream(codec_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
    codec_.scheduleWrite();
  }
  return cb;
}

void Http2ClientStream::onHeaderBlock(bool end_stream) {
  if (!callbacks_) return;
  ResponseHead& head = codec_.response_;
  head.headers.clear();
  head.content_length.reset();
  head.chunked = false;
  head.keep_alive = true;
  head.close_client = false;
  for (const auto [name, value] : received_) {
    if (name == "content-length") {
      // nghttp2 checked the value, and checks the DATA against it.
      h2::takeContentLength(head.headers, value, &head.content_length);
    } else {
      head.headers.add(name, value);
    }
  }
  if (final_head_) {
    // Trailers: nghttp2 made sure they end the stream.
    takeCallbacks()->onUpstreamTrailers(head.headers);
    return;
  }
  head.status = status_;
  if (status_ < 200) {
    head.content_length.reset();
    callbacks_->onUpstreamInformational(head);
    return;
  }
  final_head_ = true;
  // No content-length: a body of unknown length follows (chunked for an HTTP/1.1 client).
  head.chunked = !head.content_length && !end_stream;
  if (end_stream) {
    takeCallbacks()->onUpstreamHeaders(head, true);
  } else {
    callbacks_->onUpstreamHeaders(head, false);
  }
}

void Http2ClientStream::onResponseEnd() {
  if (callbacks_) takeCallbacks()->onUpstreamBody({}, true);
}

ErrorCode Http2ClientStream::failure() const {
  if (refused()) return ErrorCode::kUpstreamReset;
  return protocol_error_ ? ErrorCode::kUpstreamProtocolError : ErrorCode::kUpstreamReset;
}

// ---- the connection's session ------------------------------------------------------------------

Http2ClientCodec::Http2ClientCodec(UpstreamConnection& connection, size_t max_streams,
                                   uint32_t max_informational, uint32_t max_fields)
    : UpstreamCodec(connection),
      max_streams_(std::max<size_t>(1, max_streams)),
      max_informational_(max_informational),
      max_fields_(max_fields) {}

Http2ClientCodec::~Http2ClientCodec() {
  // nghttp2 calls nothing back while it is deleted; the streams it pointed at go after it.
  if (session_ != nullptr) nghttp2_session_del(session_);
  for (auto* list : {&streams_, &closed_}) {
    while (Http2ClientStream* s = list->popFront())
      delete s;
  }
}

nghttp2_session_callbacks* Http2ClientCodec::makeCallbacks() {
  nghttp2_session_callbacks* c = nullptr;
  if (nghttp2_session_callbacks_new(&c) != 0) return nullptr;
  nghttp2_session_callbacks_set_on_begin_headers_callback(c, &onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(c, &onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(c, &onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, &onDataChunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(c, &onFrameSend);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(c, &onInvalidFrame);
  nghttp2_session_callbacks_set_on_stream_close_callback(c, &onStreamClose);
  nghttp2_session_callbacks_set_error_callback2(c, &onError);
  return c;
}

void Http2ClientCodec::start() {
  // nghttp2 copies the callbacks into each session: one set, made once.
  static const std::unique_ptr<nghttp2_session_callbacks, void (*)(nghttp2_session_callbacks*)>
      callbacks(makeCallbacks(), &nghttp2_session_callbacks_del);
  nghttp2_option* option = h2::newSessionOptions(h2::SessionLimits{}, /*server=*/false);
  const int rv = nghttp2_session_client_new2(&session_, callbacks.get(), this, option);
  nghttp2_option_del(option);
  if (rv != 0) {
    session_ = nullptr;
    failConnection(ErrorCode::kUpstreamConnectFailed, "cannot set up an HTTP/2 session");
    return;
  }
  // No server push; response header blocks as large as HTTP/1 heads may be; a stream window
  // that bounds what a paused response can still deliver.
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxResponseHeadBytes},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  scheduleWrite();  // the preface and our settings; ready once the peer's settings arrive
}

UpstreamStream& Http2ClientCodec::newStream(UpstreamStreamCallbacks& callbacks) {
  auto* stream = new Http2ClientStream(*this, callbacks);
  streams_.pushBack(*stream);
  ++active_;
  return *stream;
}

bool Http2ClientCodec::acceptsStreams() const {
  return ready_ && !failed_ && !goaway_ && !terminated_ &&
         nghttp2_session_check_request_allowed(session_) != 0;
}

size_t Http2ClientCodec::streamCapacity() const {
  if (!acceptsStreams()) return 0;
  const uint32_t peer =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  const size_t limit = std::min<size_t>(peer, max_streams_);
  return active_ >= limit ? 0 : limit - active_;
}

bool Http2ClientCodec::idleAndOpen() {
  // Control frames (PING, SETTINGS) may wait on an idle HTTP/2 connection; EOF may not.
  return !failed_ && !goaway_ && connection_.socketIdleAndOpen(true);
}

Http2ClientStream* Http2ClientCodec::streamOf(int32_t stream_id) const {
  return static_cast<Http2ClientStream*>(nghttp2_session_get_stream_user_data(session_, stream_id));
}

// ---- socket events -----------------------------------------------------------------------------

void Http2ClientCodec::onData() {
  Buffer& in = this->in();
  if (failed_ || session_ == nullptr) {
    in.clear();
    return;
  }
  received_ = received_ || !in.empty();
  const ssize_t n =
      nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(in.data()), in.size());
  in.clear();
  in.release();
  if (n < 0) {
    failConnection(ErrorCode::kUpstreamProtocolError,
                   std::string("http/2: ") + nghttp2_strerror(static_cast<int>(n)));
    return;
  }
  scheduleWrite();  // acknowledgements and window updates
  afterSession();
}

void Http2ClientCodec::onPeerClosed() {
  transportLost("connection closed by the upstream");
}

void Http2ClientCodec::onSocketError(int err) {
  transportLost(std::strerror(err));
}

void Http2ClientCodec::transportLost(const std::string& reason) {
  // A peer that sent bytes but never its SETTINGS does not speak HTTP/2 (an HTTP/1 server
  // answering the preface, say): that is so whether its close arrives with its answer or after.
  if (!violation_.empty() || (!ready_ && received_)) {
    failConnection(ErrorCode::kUpstreamProtocolError,
                   violation_.empty() ? "the upstream did not answer in HTTP/2" : violation_);
    return;
  }
  failConnection(ready_ ? ErrorCode::kUpstreamReset : ErrorCode::kUpstreamConnectFailed, reason);
}

void Http2ClientCodec::onOutputDrained() {
  // The pump stopped at the cap, not because the session had nothing left: go on.
  if (output_capped_) scheduleWrite();
}

void Http2ClientCodec::onOutputProgress() {
  if (output_capped_) scheduleWrite();
}

void Http2ClientCodec::prepareOutput() {
  if (failed_ || session_ == nullptr) return;
  const bool ok = h2::pumpOutput(session_, out(), kOutputCap);
  output_capped_ = out().size() >= kOutputCap;
  if (!ok) {
    failConnection(ErrorCode::kUpstreamProtocolError, "http/2 session failed");
    return;
  }
  std::vector<Http2ClientStream*> writable;
  writable.swap(writable_);
  for (Http2ClientStream* s : writable) {
    if (s->callbacks_) s->callbacks_->onUpstreamWritable();
  }
  afterSession();
}

// ---- after nghttp2 returned --------------------------------------------------------------------

void Http2ClientCodec::afterSession() {
  finishStreams();
  if (failed_) return;
  if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
    // GOAWAY one way or the other and no stream left, or a connection error.
    if (terminated_ || !violation_.empty() || (!ready_ && received_)) {
      std::string why = violation_;
      if (why.empty()) {
        why = ready_ ? "http/2 protocol error by the upstream"
                     : "the upstream did not answer in HTTP/2";
      }
      failConnection(ErrorCode::kUpstreamProtocolError, why);
    } else {
      failConnection(ErrorCode::kUpstreamReset, "the upstream ended the HTTP/2 connection");
    }
    return;
  }
  if (!settings_changed_) return;
  settings_changed_ = false;
  if (!ready_) {
    ready_ = true;
    connection_.ready();  // the pool starts streams on it now
    return;
  }
  connection_.capacityChanged();
}

void Http2ClientCodec::finishStreams() {
  while (Http2ClientStream* s = closed_.popFront()) {
    UpstreamStreamCallbacks* cb = s->callbacks_;
    const ErrorCode code = s->failure();
    const bool sent = s->requestSent();
    delete s;
    --active_;
    // A stream that ended without its response end: the Exchange retries or answers 502.
    if (cb) cb->onUpstreamReset(code, sent);
    if (failed_) return;
    if (!connection_.open()) {
      failConnection(ErrorCode::kUpstreamReset, "connection closed");
      return;
    }
    connection_.streamDone(acceptsStreams());
    if (!connection_.open()) {
      failConnection(ErrorCode::kUpstreamReset, "connection closed");
      return;
    }
  }
}

void Http2ClientCodec::failConnection(ErrorCode code, const std::string& detail) {
  if (failed_) return;
  failed_ = true;
  writable_.clear();
  if (!ready_) {
    connection_.fail(code, detail);  // no stream started on it yet
    return;
  }
  // The pool forgets the connection first, so that a retry goes elsewhere. Every stream is
  // closed (its methods do nothing now) before any Exchange hears of it, and deleted after the
  // last one has: an Exchange told later may still call its stream meanwhile.
  connection_.close();
  std::vector<Http2ClientStream*> all;
  for (auto* list : {&closed_, &streams_}) {
    while (Http2ClientStream* s = list->popFront())
      all.push_back(s);
  }
  active_ = 0;
  std::vector<ErrorCode> codes;
  for (Http2ClientStream* s : all) {
    codes.push_back(s->closed_ ? s->failure() : code);
    s->closed_ = true;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    if (UpstreamStreamCallbacks* cb = std::exchange(all[i]->callbacks_, nullptr)) {
      cb->onUpstreamReset(codes[i], all[i]->requestSent());
    }
  }
  for (Http2ClientStream* s : all)
    delete s;
}

// ---- nghttp2 callbacks -------------------------------------------------------------------------

int Http2ClientCodec::onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame,
                                     void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (Http2ClientStream* s = codecOf(user_data).streamOf(frame->hd.stream_id)) {
    s->received_.clear();
    s->status_ = 0;
  }
  return 0;
}

int Http2ClientCodec::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                               size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                               void* user_data) {
  Http2ClientCodec& self = codecOf(user_data);
  Http2ClientStream* s = self.streamOf(frame->hd.stream_id);
  if (s == nullptr) return 0;
  const std::string_view n = h2::view(name, namelen);
  const std::string_view v = h2::view(value, valuelen);
  if (n == ":status") {
    std::from_chars(v.data(), v.data() + v.size(), s->status_);  // nghttp2 checked: 3 digits
    // An endless run of 1xx heads would hold the request (and its slot) forever.
    if (s->status_ < 200 && ++s->informational_seen_ > self.max_informational_) {
      s->protocol_error_ = true;
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
  }
  if (s->received_.count() >= self.max_fields_ ||
      s->received_.bytes() + n.size() + v.size() > kMaxResponseHeadBytes) {
    s->protocol_error_ = true;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // the stream is reset
  }
  s->received_.add(n, v);
  return 0;
}

int Http2ClientCodec::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  Http2ClientCodec& self = codecOf(user_data);
  const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) self.settings_changed_ = true;
      break;
    case NGHTTP2_GOAWAY:
      // No new streams; those above last_stream_id are closed with REFUSED_STREAM.
      self.goaway_ = true;
      self.settings_changed_ = true;
      break;
    case NGHTTP2_HEADERS:
      if (Http2ClientStream* s = self.streamOf(frame->hd.stream_id)) s->onHeaderBlock(end_stream);
      break;
    case NGHTTP2_DATA:
      if (end_stream) {
        if (Http2ClientStream* s = self.streamOf(frame->hd.stream_id)) s->onResponseEnd();
      }
      break;
    default:
      break;
  }
  return 0;
}

int Http2ClientCodec::onDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                                  const uint8_t* data, size_t len, void* user_data) {
  // The connection window is given back at once: one paused stream must not stall the others.
  nghttp2_session_consume_connection(session, len);
  Http2ClientStream* s = codecOf(user_data).streamOf(stream_id);
  if (s == nullptr || s->callbacks_ == nullptr) {
    nghttp2_session_consume_stream(session, stream_id, len);
    return 0;
  }
  s->callbacks_->onUpstreamBody(h2::view(data, len), false);
  if (s->callbacks_ == nullptr) {
    nghttp2_session_consume_stream(session, stream_id, len);  // nobody will resume it
  } else {
    s->response_window_.delivered(session, stream_id, len);  // owed while the Exchange pauses
  }
  return 0;
}

int Http2ClientCodec::onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  Http2ClientCodec& self = codecOf(user_data);
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (Http2ClientStream* s = self.streamOf(frame->hd.stream_id)) s->headers_sent_ = true;
  } else if (frame->hd.type == NGHTTP2_GOAWAY) {
    // We never say GOAWAY ourselves: nghttp2 does when the peer broke the protocol.
    self.terminated_ = true;
  }
  return 0;
}

int Http2ClientCodec::onInvalidFrame(nghttp2_session*, const nghttp2_frame* frame, int,
                                     void* user_data) {
  // A response that breaks the rules (a bad header, a content-length the DATA does not match):
  // nghttp2 resets the stream; the Exchange hears upstream_protocol_error.
  if (frame->hd.stream_id == 0) return 0;
  if (Http2ClientStream* s = codecOf(user_data).streamOf(frame->hd.stream_id)) {
    s->protocol_error_ = true;
  }
  return 0;
}

int Http2ClientCodec::onError(nghttp2_session*, int, const char* message, size_t length,
                              void* user_data) {
  // Called for the peer's connection errors (e.g. no SETTINGS first: not an HTTP/2 server).
  Http2ClientCodec& self = codecOf(user_data);
  if (!self.violation_.empty()) return 0;
  std::string_view text(message, length);
  while (!text.empty() && (text.back() == '.' || text.back() == ' '))
    text.remove_suffix(1);
  self.violation_ = "http/2: " + std::string(text);
  return 0;
}

int Http2ClientCodec::onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                                    void* user_data) {
  Http2ClientCodec& self = codecOf(user_data);
  Http2ClientStream* s = self.streamOf(stream_id);
  if (s == nullptr || s->closed_) return 0;
  s->closed_ = true;
  s->close_code_ = error_code;
  s->leaveList();
  self.closed_.pushBack(*s);  // reported once nghttp2 returns
  return 0;
}

}  // namespace viscount
