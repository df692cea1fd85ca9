#include "proxy/http1/http1_client.h"

#include "proxy/http/upstream_request.h"
#include "proxy/http1/http1_encoder.h"

namespace viscount {

Http1ClientCodec::Http1ClientCodec(UpstreamConnection& connection, uint32_t max_informational,
                                   uint32_t max_fields)
    : UpstreamCodec(connection),
      parser_(Http1Parser::Kind::kResponse, *this),
      max_informational_(max_informational) {
  parser_.setMaxHeadBytes(kMaxResponseHeadBytes);
  parser_.setMaxFields(max_fields);
}

UpstreamStream& Http1ClientCodec::newStream(UpstreamStreamCallbacks& callbacks) {
  callbacks_ = &callbacks;
  active_ = true;
  parser_.reset();
  parsed_ = 0;
  request_chunked_ = false;
  request_done_ = false;
  written_before_stream_ = connection_.bytesWritten();
  headers_delivered_ = false;
  end_delivered_ = false;
  informational_ = false;
  informational_seen_ = 0;
  response_done_ = false;
  response_started_ = false;
  reset_pending_ = false;
  upgrade_requested_ = false;
  tunnel_ = false;
  close_when_drained_ = false;
  setReadDisabled(false);
  return *this;
}

void Http1ClientCodec::sendHead(const UpstreamRequest& request, bool end_stream) {
  parser_.setResponseToHead(request.isHead());
  upgrade_requested_ = !request.upgrade().empty();
  parser_.setUpgradeExpected(upgrade_requested_);
  encodeRequestHead(out(), request);
  request_chunked_ = request.chunked;
  if (end_stream) {
    if (request_chunked_) encodeLastChunk(out(), nullptr);
    request_done_ = true;
  }
  scheduleWrite();
}

void Http1ClientCodec::sendBody(std::string_view data, bool end_stream) {
  if (tunnel_) {
    out().append(data);
    if (end_stream) {
      // The client's side of the tunnel ended: nothing more is reported; what it sent still
      // goes out before the close.
      callbacks_ = nullptr;
      close_when_drained_ = true;
      if (connection_.bufferedOutput() == 0 && !dispatching_) {
        active_ = false;
        connection_.close();
        return;
      }
    }
    scheduleWrite();
    return;
  }
  if (request_chunked_) {
    encodeChunk(out(), data);
    if (end_stream) encodeLastChunk(out(), nullptr);
  } else {
    out().append(data);
  }
  if (end_stream) request_done_ = true;
  scheduleWrite();
}

void Http1ClientCodec::sendTrailers(HeaderList& trailers) {
  if (request_chunked_) encodeLastChunk(out(), &trailers);
  request_done_ = true;
  scheduleWrite();
}

void Http1ClientCodec::reset() {
  callbacks_ = nullptr;
  if (dispatching_) {
    reset_pending_ = true;  // the parser is running over in(): close once it returns
    return;
  }
  active_ = false;
  connection_.close();
}

size_t Http1ClientCodec::readBudget() const {
  if (close_when_drained_) return 0;
  if (parser_.inHeaders() && !tunnel_) {
    const size_t limit = kMaxResponseHeadBytes + BufferCache::kBlockSize;
    const size_t held = in().size();
    return held >= limit ? 0 : limit - held;
  }
  return BufferCache::kBlockSize;
}

void Http1ClientCodec::onOutputDrained() {
  if (close_when_drained_) {
    active_ = false;
    connection_.close();
    return;
  }
  if (callbacks_) callbacks_->onUpstreamWritable();
}

void Http1ClientCodec::onOutputProgress() {
  if (callbacks_ && connection_.bufferedOutput() < kLowWatermark) {
    callbacks_->onUpstreamWritable();
  }
}

void Http1ClientCodec::onData() {
  if (!callbacks_) {
    // Bytes on an idle connection answer no request of ours: never reuse it.
    connection_.close();
    return;
  }
  response_started_ = true;
  if (tunnel_) {
    deliverTunnelBytes();
    return;
  }
  parse();
}

void Http1ClientCodec::deliverTunnelBytes() {
  Buffer& in = this->in();
  if (in.empty()) return;
  // The Exchange copies the bytes towards the client; it may reset us meanwhile.
  dispatching_ = true;
  callbacks_->onUpstreamBody(in.view(), false);
  dispatching_ = false;
  in.clear();
  if (reset_pending_) {
    active_ = false;
    connection_.close();
  }
}

void Http1ClientCodec::startTunnel() {
  // Never back to the pool: the connection no longer speaks HTTP, and it should not hold one of
  // the upstream's pooled connections for as long as the tunnel lives.
  connection_.detachFromPool();
  if (callbacks_ && !in().empty()) deliverTunnelBytes();
  // A tunnel may idle for hours: no buffer, parser or head held meanwhile.
  in().releaseIfEmpty();
  parser_.reset();
  parser_.trim();
  response_.headers = HeaderList();
}

void Http1ClientCodec::parse() {
  Buffer& in = this->in();
  dispatching_ = true;
  const Http1Parser::Result r = parser_.execute(in.data(), parsed_, in.size() - parsed_);
  dispatching_ = false;
  if (reset_pending_) {
    active_ = false;
    connection_.close();
    return;
  }
  if (r.status == Http1Parser::Status::kError) {
    failStream(parser_.error() == ErrorCode::kNone ? ErrorCode::kUpstreamProtocolError
                                                   : parser_.error());
    return;
  }
  if (r.status == Http1Parser::Status::kPaused && tunnel_) {
    in.consume(parsed_ + r.consumed);
    parsed_ = 0;
    startTunnel();
    return;
  }
  if (r.status == Http1Parser::Status::kPaused) {
    const bool trailing = parsed_ + r.consumed < in.size();
    in.clear();
    parsed_ = 0;
    finishResponse(trailing);
    return;
  }
  if (parser_.inHeaders()) {
    parsed_ = in.size();  // head bytes stay until the head is complete
  } else {
    in.clear();
    parsed_ = 0;
  }
}

bool Http1ClientCodec::onHeadersComplete(Http1Head& head) {
  if (!callbacks_) return false;
  response_.headers = std::move(*head.headers);
  response_.status = head.status;
  response_.content_length = head.content_length;
  response_.chunked = head.chunked;
  response_.keep_alive = head.keep_alive;
  if (head.status == 101) {
    // The parser lets a 101 through only to a request that asked for an upgrade.
    tunnel_ = true;
    headers_delivered_ = true;
    callbacks_->onUpstreamHeaders(response_, false);
    *head.headers = std::move(response_.headers);
    return callbacks_ != nullptr;
  }
  if (head.status < 200) {
    // Each 1xx is cheap for the upstream and costs us a parse and a write to the client: an
    // endless stream of them would hold the request forever.
    if (++informational_seen_ > max_informational_) {
      parser_.fail(ErrorCode::kUpstreamProtocolError, "too many informational responses");
      return false;
    }
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

void Http1ClientCodec::onBody(std::string_view data) {
  if (callbacks_ && !data.empty()) callbacks_->onUpstreamBody(data, false);
}

void Http1ClientCodec::onTrailers(HeaderList& trailers) {
  if (callbacks_ && !informational_) {
    end_delivered_ = true;
    callbacks_->onUpstreamTrailers(trailers);
  }
}

bool Http1ClientCodec::onMessageComplete() {
  if (tunnel_) return true;  // pause: what follows the 101 is the other protocol
  if (informational_) {
    informational_ = false;
    return false;  // the final response follows
  }
  response_done_ = true;
  return true;
}

void Http1ClientCodec::finishResponse(bool trailing_bytes) {
  UpstreamStreamCallbacks* cb = callbacks_;
  callbacks_ = nullptr;
  const bool reusable =
      response_.keep_alive && request_done_ && connection_.bufferedOutput() == 0 && !trailing_bytes;
  if (cb && !end_delivered_) cb->onUpstreamBody({}, true);
  active_ = false;
  connection_.streamDone(reusable);
}

void Http1ClientCodec::failStream(ErrorCode code) {
  UpstreamStreamCallbacks* cb = callbacks_;
  callbacks_ = nullptr;
  const bool sent = connection_.bytesWritten() > written_before_stream_;
  active_ = false;
  connection_.close();
  if (cb) cb->onUpstreamReset(code, sent);
}

void Http1ClientCodec::onPeerClosed() {
  if (!callbacks_) {
    connection_.close();
    return;
  }
  if (tunnel_) {
    // The upstream's side of the tunnel ended (a normal close for a tunnel): the client gets
    // what is still on its way, then its connection closes too.
    UpstreamStreamCallbacks* cb = callbacks_;
    callbacks_ = nullptr;
    active_ = false;
    connection_.close();
    cb->onUpstreamBody({}, true);
    return;
  }
  if (headers_delivered_ && !parser_.inHeaders()) {
    // A close-delimited body ends here; any other framing was cut short.
    dispatching_ = true;
    const bool complete = parser_.finish() && response_done_;
    dispatching_ = false;
    if (reset_pending_) {
      active_ = false;
      connection_.close();
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

void Http1ClientCodec::onSocketError(int) {
  if (!callbacks_) {
    connection_.close();
    return;
  }
  failStream(ErrorCode::kUpstreamReset);
}

}  // namespace viscount
