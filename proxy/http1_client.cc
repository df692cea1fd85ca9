#include "proxy/http1_client.h"

#include "proxy/http1_encoder.h"
#include "proxy/upstream_request.h"

namespace viscount {

Http1ClientConnection::Http1ClientConnection(UpstreamPool& pool, EventLoop& loop,
                                             const ResolvedAddress& address)
    : UpstreamConnection(pool, loop, address), parser_(Http1Parser::Kind::kResponse, *this) {
  parser_.setMaxHeadBytes(kMaxResponseHeadBytes);
}

UpstreamStream& Http1ClientConnection::newStream(UpstreamStreamCallbacks& callbacks) {
  callbacks_ = &callbacks;
  parser_.reset();
  parsed_ = 0;
  request_chunked_ = false;
  request_done_ = false;
  written_before_stream_ = bytesWritten();
  headers_delivered_ = false;
  end_delivered_ = false;
  informational_ = false;
  response_done_ = false;
  reset_pending_ = false;
  setReadDisabled(false);
  return *this;
}

void Http1ClientConnection::sendHead(const UpstreamRequest& request, bool end_stream) {
  parser_.setResponseToHead(request.isHead());
  encodeRequestHead(out_, request);
  request_chunked_ = request.chunked;
  if (end_stream) {
    if (request_chunked_) encodeLastChunk(out_, nullptr);
    request_done_ = true;
  }
  scheduleWrite();
}

void Http1ClientConnection::sendBody(std::string_view data, bool end_stream) {
  if (request_chunked_) {
    encodeChunk(out_, data);
    if (end_stream) encodeLastChunk(out_, nullptr);
  } else {
    out_.append(data);
  }
  if (end_stream) request_done_ = true;
  scheduleWrite();
}

void Http1ClientConnection::sendTrailers(HeaderList& trailers) {
  if (request_chunked_) encodeLastChunk(out_, &trailers);
  request_done_ = true;
  scheduleWrite();
}

void Http1ClientConnection::reset() {
  callbacks_ = nullptr;
  if (dispatching_) {
    reset_pending_ = true;  // the parser is running over in_: close once it returns
    return;
  }
  close();
}

size_t Http1ClientConnection::readBudget() const {
  if (parser_.inHeaders()) {
    const size_t limit = kMaxResponseHeadBytes + BufferCache::kBlockSize;
    return in_.size() >= limit ? 0 : limit - in_.size();
  }
  return BufferCache::kBlockSize;
}

void Http1ClientConnection::onOutputDrained() {
  if (callbacks_) callbacks_->onUpstreamWritable();
}

void Http1ClientConnection::onOutputProgress() {
  if (callbacks_ && bufferedOutput() < kLowWatermark) callbacks_->onUpstreamWritable();
}

void Http1ClientConnection::onData() {
  if (!callbacks_) {
    // Bytes on an idle connection answer no request of ours: never reuse it.
    idleConnectionBroken();
    return;
  }
  parse();
}

void Http1ClientConnection::parse() {
  dispatching_ = true;
  const Http1Parser::Result r = parser_.execute(in_.data(), parsed_, in_.size() - parsed_);
  dispatching_ = false;
  if (reset_pending_) {
    close();
    return;
  }
  if (r.status == Http1Parser::Status::kError) {
    failStream(parser_.error() == ErrorCode::kNone ? ErrorCode::kUpstreamProtocolError
                                                   : parser_.error());
    return;
  }
  if (r.status == Http1Parser::Status::kPaused) {
    const bool trailing = parsed_ + r.consumed < in_.size();
    in_.clear();
    parsed_ = 0;
    finishResponse(trailing);
    return;
  }
  if (parser_.inHeaders()) {
    parsed_ = in_.size();  // head bytes stay until the head is complete
  } else {
    in_.clear();
    parsed_ = 0;
  }
}

bool Http1ClientConnection::onHeadersComplete(Http1Head& head) {
  if (!callbacks_) return false;
  response_.headers = std::move(*head.headers);
  response_.status = head.status;
  response_.content_length = head.content_length;
  response_.chunked = head.chunked;
  response_.keep_alive = head.keep_alive;
  if (head.status < 200) {
    informational_ = true;
    callbacks_->onUpstreamInformational(response_);
    *head.headers = std::move(response_.headers);
    return callbacks_ != nullptr;
  }
  informational_ = false;
  headers_delivered_ = true;
  callbacks_->onUpstreamHeaders(response_, false);
  *head.headers = std::move(response_.headers);
  return callbacks_ != nullptr;
}

void Http1ClientConnection::onBody(std::string_view data) {
  if (callbacks_ && !data.empty()) callbacks_->onUpstreamBody(data, false);
}

void Http1ClientConnection::onTrailers(HeaderList& trailers) {
  if (callbacks_ && !informational_) {
    end_delivered_ = true;
    callbacks_->onUpstreamTrailers(trailers);
  }
}

bool Http1ClientConnection::onMessageComplete() {
  if (informational_) {
    informational_ = false;
    return false;  // the final response follows
  }
  response_done_ = true;
  return true;
}

void Http1ClientConnection::finishResponse(bool trailing_bytes) {
  UpstreamStreamCallbacks* cb = callbacks_;
  callbacks_ = nullptr;
  const bool reusable =
      response_.keep_alive && request_done_ && bufferedOutput() == 0 && !trailing_bytes;
  if (cb && !end_delivered_) cb->onUpstreamBody({}, true);
  streamDone(reusable);
}

void Http1ClientConnection::failStream(ErrorCode code) {
  UpstreamStreamCallbacks* cb = callbacks_;
  callbacks_ = nullptr;
  const bool sent = bytesWritten() > written_before_stream_;
  close();
  if (cb) cb->onUpstreamReset(code, sent);
}

void Http1ClientConnection::onPeerClosed() {
  if (!callbacks_) {
    idleConnectionBroken();
    return;
  }
  if (headers_delivered_ && !parser_.inHeaders()) {
    // A close-delimited body ends here; any other framing was cut short.
    dispatching_ = true;
    const bool complete = parser_.finish() && response_done_;
    dispatching_ = false;
    if (reset_pending_) {
      close();
      return;
    }
    if (complete) {
      response_.keep_alive = false;
      finishResponse(false);
      return;
    }
  }
  failStream(ErrorCode::kUpstreamReset);
}

void Http1ClientConnection::onSocketError(int) {
  if (!callbacks_) {
    idleConnectionBroken();
    return;
  }
  failStream(ErrorCode::kUpstreamReset);
}

}  // namespace viscount
