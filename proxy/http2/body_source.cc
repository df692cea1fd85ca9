#include "proxy/http2/body_source.h"

#include <algorithm>
#include <cstring>

#include "proxy/http/stream.h"

namespace viscount::h2 {

void BodySource::endWithTrailers(const HeaderList& trailers) {
  // One copy of every name and value, reserved up front so the views into it stay put.
  size_t bytes = 0;
  for (const HeaderField& f : trailers.fields()) {
    if (!f.removed) bytes += f.name.size() + f.value.size();
  }
  trailer_bytes_.clear();
  trailer_bytes_.reserve(bytes);
  trailers_.clear();
  for (const HeaderField& f : trailers.fields()) {
    if (f.removed) continue;
    const size_t at = trailer_bytes_.size();
    trailer_bytes_.append(f.name);
    trailer_bytes_.append(f.value);
    const std::string_view all(trailer_bytes_);
    trailers_.add(all.substr(at, f.name.size()), all.substr(at + f.name.size(), f.value.size()));
  }
  has_trailers_ = trailers_.size() > 0;
  ended_ = true;
}

bool BodySource::belowLowWatermark() {
  if (!watch_low_ || pending_.size() >= kLowWatermark) return false;
  watch_low_ = false;
  return true;
}

void BodySource::resume(nghttp2_session* session, int32_t stream_id) {
  if (!deferred_) return;
  deferred_ = false;
  nghttp2_session_resume_data(session, stream_id);
}

ssize_t BodySource::read(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                         uint32_t* flags) {
  const size_t n = std::min(length, pending_.size());
  if (n > 0) {
    std::memcpy(buf, pending_.data(), n);
    pending_.consume(n);
  }
  if (!pending_.empty()) return static_cast<ssize_t>(n);
  pending_.release();
  if (!ended_) {
    if (n > 0) return static_cast<ssize_t>(n);
    deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  if (has_trailers_) {
    *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    if (nghttp2_submit_trailer(session, stream_id, trailers_.data(), trailers_.size()) != 0) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace viscount::h2
