#pragma once

// Backpressure on what the peer sends on one stream. The session runs without automatic window
// updates (see newSessionOptions): DATA delivered to a reader that is taking it goes back into
// the stream's window at once, but while the reader is paused it is owed, and the peer may send
// only what is left of the window until the reader resumes and the debt is paid. The connection
// window is not this: both codecs give it back as DATA arrives, so one paused stream cannot
// stall the others.

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>

namespace viscount::h2 {

class ReceiveWindow {
 public:
  bool paused() const { return paused_; }
  void pause(bool paused) { paused_ = paused; }

  // `length` bytes of the stream's DATA went to the reader.
  void delivered(nghttp2_session* session, int32_t stream_id, size_t length) {
    if (paused_) {
      owed_ += length;
    } else {
      nghttp2_session_consume_stream(session, stream_id, length);
    }
  }

  // Gives back what arrived while paused; true when there was some (a WINDOW_UPDATE waits to be
  // sent).
  bool repay(nghttp2_session* session, int32_t stream_id) {
    if (owed_ == 0) return false;
    nghttp2_session_consume_stream(session, stream_id, owed_);
    owed_ = 0;
    return true;
  }

 private:
  bool paused_ = false;
  size_t owed_ = 0;
};

}  // namespace viscount::h2
