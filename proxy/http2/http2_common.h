#pragma once

// What the HTTP/2 server codec (client connections) and client codec (upstream connections)
// share: header blocks for nghttp2 (names lowercased, connection-specific fields dropped),
// nghttp2 session options with the flood defences, and moving a session's output into a
// connection's send buffer with a cap (a peer that does not read cannot make us buffer more).

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/http_message.h"
#include "proxy/net/buffer.h"

namespace viscount::h2 {

// Fields RFC 9113 section 8.2.2 forbids in HTTP/2 (`te` is allowed only as "trailers"). They
// are dropped when an HTTP/1 message is translated; nghttp2 rejects them in received messages.
bool isConnectionSpecific(std::string_view name, std::string_view value);

// One header block being built for nghttp2_submit_*. Names are lowercased into the block's own
// storage; values are referenced (nghttp2 copies both when the block is submitted).
class HeaderBlock {
 public:
  void clear();
  // Pseudo-headers and names known to be lowercase already.
  void addLower(std::string_view name, std::string_view value);
  // Any field from an HTTP/1 message or a filter: lowercased, connection-specific ones skipped.
  void add(std::string_view name, std::string_view value);
  void addAll(const HeaderList& headers);
  // A content-length field with `length` in decimal, kept in the block (one per block).
  void addContentLength(uint64_t length);
  // The nv array; valid until the next add or clear.
  const nghttp2_nv* data();
  size_t size() const { return fields_.size(); }

 private:
  struct Field {
    size_t name_off;  // into lowered_ when name_owned, else unused
    std::string_view name;
    std::string_view value;
    bool name_owned;
  };
  std::vector<Field> fields_;
  std::string lowered_;
  std::vector<nghttp2_nv> nv_;
  char length_[24] = {};
};

// Session limits shared by both sides; the server adds its own on top.
struct SessionLimits {
  size_t max_header_list_bytes = 64 * 1024;  // decoded name + value bytes of one block
  // The largest header block we may send (nghttp2 counts it with nghttp2_hd_deflate_bound);
  // 0: max_header_list_bytes + 4 KiB.
  size_t max_send_header_block_bytes = 0;
  uint32_t max_concurrent_streams = 100;
};

// An nghttp2_option with the flood defences on: a loose cap on RST_STREAM frames of any kind
// (the rapid-reset defence proper is ResetBudget), bounded CONTINUATION frames, bounded SETTINGS
// entries and queued ACK frames, and header blocks bounded in size. The caller frees it with
// nghttp2_option_del.
nghttp2_option* newSessionOptions(const SessionLimits& limits, bool server);

// The rapid-reset defence (CVE-2023-44487): streams a client opens and resets while they are
// still open with us, a burst of kBurst and then kPerSecond, per connection. A RST_STREAM for a
// stream already closed costs nothing and is not counted: python-h2 (so httpx) answers every
// DATA frame that arrives after it cancelled a download with one, dozens per cancel.
class ResetBudget {
 public:
  static constexpr double kBurst = 200;
  static constexpr double kPerSecond = 50;

  // Counts one reset; false once the budget is spent.
  bool spend(std::chrono::steady_clock::time_point now) {
    if (last_ != std::chrono::steady_clock::time_point{}) {
      const double elapsed = std::chrono::duration<double>(now - last_).count();
      tokens_ = std::min(kBurst, tokens_ + elapsed * kPerSecond);
    }
    last_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  double tokens_ = kBurst;
  std::chrono::steady_clock::time_point last_{};
};

// Appends what the session wants to send to `out` while `out` holds less than `cap` bytes.
// Returns false when nghttp2 reports a fatal error (the connection must close).
bool pumpOutput(nghttp2_session* session, Buffer& out, size_t cap);

// nghttp2's view of a string.
inline std::string_view view(const uint8_t* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

}  // namespace viscount::h2
