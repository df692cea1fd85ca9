#pragma once

// The body a stream sends (the server's responses, the client's requests) as nghttp2 takes it:
// bytes wait here until flow control lets them out, and the stream's data provider hands them
// over from read(). A source with nothing to give that has not ended is deferred until more
// arrives (resume); its end is END_STREAM on the last DATA frame, or trailers after it.

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/http/http_message.h"
#include "proxy/http2/http2_common.h"
#include "proxy/net/buffer.h"

namespace viscount::h2 {

class BodySource {
 public:
  explicit BodySource(BufferCache* cache) : pending_(cache) {}

  void append(std::string_view data) { pending_.append(data); }
  void end() { ended_ = true; }
  // Ends the body with trailers, copied (the fields may point into a buffer that is reused
  // before nghttp2 asks for them); without any field left it is a plain end.
  void endWithTrailers(const HeaderList& trailers);

  size_t size() const { return pending_.size(); }
  bool empty() const { return pending_.empty(); }
  bool ended() const { return ended_; }

  // The owner wants to hear (belowLowWatermark) when the bytes waiting here fall under
  // kLowWatermark again, to resume what feeds it.
  void watchLowWatermark() { watch_low_ = true; }
  // True once per watchLowWatermark, after a read left less than kLowWatermark.
  bool belowLowWatermark();

  // Wakes a deferred source up: nghttp2 asks for data again on its next output pass.
  void resume(nghttp2_session* session, int32_t stream_id);

  // The data provider's read callback: up to `length` bytes into `buf`, NGHTTP2_DATA_FLAG_EOF
  // at the end (with the trailers submitted), NGHTTP2_ERR_DEFERRED while waiting for more.
  ssize_t read(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
               uint32_t* flags);

 private:
  Buffer pending_;
  std::string trailer_bytes_;  // the trailers' names and values
  HeaderBlock trailers_;
  bool ended_ = false;
  bool has_trailers_ = false;
  bool deferred_ = false;
  bool watch_low_ = false;
};

}  // namespace viscount::h2
