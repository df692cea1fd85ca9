#pragma once

// HTTP/2 frames both ways, for the http2_server fuzz target: the methods in what the client
// sent, decoded as the server decodes them, and a client's reading of what the server sent,
// checked frame by frame.

#include <nghttp2/nghttp2.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "proxy/http2/http2_common.h"
#include "tests/fuzz/fuzz_support.h"

namespace viscount::fuzz {

inline constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// SETTINGS_MAX_FRAME_SIZE's default: nghttp2 keeps it.
inline constexpr size_t kMaxFrameSize = 16384;

struct Frame {
  uint8_t type;
  uint8_t flags;
  int32_t stream;  // with the reserved bit, as sent: negative when it is set
  std::string_view payload;
};

// Calls `f` on each whole frame of `bytes` until it returns false; a frame cut at the end is not
// passed.
template <class F>
void forEachFrame(std::string_view bytes, F&& f) {
  while (bytes.size() >= 9) {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    const size_t length = (size_t{p[0]} << 16) | (size_t{p[1]} << 8) | p[2];
    if (bytes.size() - 9 < length) return;
    const Frame frame{p[3], p[4],
                      static_cast<int32_t>((uint32_t{p[5]} << 24) | (uint32_t{p[6]} << 16) |
                                           (uint32_t{p[7]} << 8) | p[8]),
                      bytes.substr(9, length)};
    bytes.remove_prefix(9 + length);
    if (!f(frame)) return;
  }
}

using FieldList = std::vector<std::pair<std::string, std::string>>;

// One side's HPACK decoder, fed each header block of a connection in order.
class BlockDecoder {
 public:
  BlockDecoder() { FUZZ_CHECK(nghttp2_hd_inflate_new(&inflater_) == 0); }
  ~BlockDecoder() { nghttp2_hd_inflate_del(inflater_); }
  BlockDecoder(const BlockDecoder&) = delete;
  BlockDecoder& operator=(const BlockDecoder&) = delete;

  // False when the block does not decode.
  bool decode(std::string_view block, FieldList* fields) {
    const auto* in = reinterpret_cast<const uint8_t*>(block.data());
    size_t left = block.size();
    for (;;) {
      nghttp2_nv nv;
      int flags = 0;
      const ssize_t n = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, in, left, 1);
      if (n < 0) return false;
      in += n;
      left -= static_cast<size_t>(n);
      if (flags & NGHTTP2_HD_INFLATE_EMIT) {
        fields->emplace_back(std::string(h2::view(nv.name, nv.namelen)),
                             std::string(h2::view(nv.value, nv.valuelen)));
      }
      if (flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inflater_);
        return true;
      }
      if (n == 0 && left == 0) return false;
    }
  }

 private:
  nghttp2_hd_inflater* inflater_ = nullptr;
};

// The :method of each request stream in the client's bytes, decoded as the server decodes them
// (every header block in order, for the shared HPACK state). Stops where the server would have
// stopped reading: a frame over the default maximum size, a broken header block sequence, a
// block that does not decode. Streams after that are not listed; the server answers none.
inline std::map<int32_t, std::string> requestMethods(std::string_view input) {
  std::map<int32_t, std::string> methods;
  if (!input.starts_with(kPreface)) return methods;
  input.remove_prefix(kPreface.size());
  BlockDecoder decoder;
  std::string block;
  int32_t block_stream = 0;
  bool in_block = false;
  auto finish = [&] {
    FieldList fields;
    if (!decoder.decode(block, &fields)) return false;
    for (const auto& [name, value] : fields) {
      if (name == ":method") {
        methods.emplace(block_stream, value);
        break;
      }
    }
    return true;
  };
  forEachFrame(input, [&](const Frame& f) {
    if (f.payload.size() > kMaxFrameSize) return false;
    if (in_block != (f.type == NGHTTP2_CONTINUATION)) return false;
    if (f.type == NGHTTP2_CONTINUATION) {
      if (f.stream != block_stream) return false;
      block.append(f.payload);
    } else if (f.type == NGHTTP2_HEADERS) {
      std::string_view payload = f.payload;
      size_t pad = 0;
      if (f.flags & NGHTTP2_FLAG_PADDED) {
        if (payload.empty()) return false;
        pad = static_cast<uint8_t>(payload.front());
        payload.remove_prefix(1);
      }
      if (f.flags & NGHTTP2_FLAG_PRIORITY) {
        if (payload.size() < 5) return false;
        payload.remove_prefix(5);
      }
      if (pad > payload.size()) return false;
      block.assign(payload.substr(0, payload.size() - pad));
      block_stream = f.stream;
    } else {
      return true;
    }
    in_block = (f.flags & NGHTTP2_FLAG_END_HEADERS) == 0;
    return in_block || finish();
  });
  return methods;
}

inline bool hasUpper(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return true;
  }
  return false;
}

inline bool validValue(std::string_view v) {
  for (char c : v) {
    if (c == '\0' || c == '\r' || c == '\n') return false;
  }
  return v.empty() ||
         (v.front() != ' ' && v.front() != '\t' && v.back() != ' ' && v.back() != '\t');
}

// Walks the server's frames and decodes its header blocks as a client would.
class ClientView {
 public:
  explicit ClientView(std::map<int32_t, std::string> methods) : methods_(std::move(methods)) {}

  void read(std::string_view out) {
    bool first = true;
    forEachFrame(out, [&](const Frame& f) {
      FUZZ_TRACE("client got: frame type %u, flags 0x%x, stream %d, %zu bytes\n", f.type, f.flags,
                 f.stream, f.payload.size());
      FUZZ_CHECK(f.payload.size() <= kMaxFrameSize);
      FUZZ_CHECK(f.stream >= 0);  // the reserved bit is clear
      if (first) FUZZ_CHECK(f.type == NGHTTP2_SETTINGS && (f.flags & NGHTTP2_FLAG_ACK) == 0);
      first = false;
      if (continuing_ != 0 && f.type != NGHTTP2_CONTINUATION) {
        FUZZ_FAIL("a header block was interrupted by another frame");
      }
      frame(f);
      return true;
    });
    // A frame cut at the end is allowed: a fatal error closes the connection at once.
  }

 private:
  struct Stream {
    bool final_seen = false;
    bool ended = false;
    bool reset = false;
    std::optional<uint64_t> content_length;
    uint64_t data = 0;
  };

  void frame(const Frame& f) {
    const int32_t id = f.stream;
    switch (f.type) {
      case NGHTTP2_DATA: {
        FUZZ_CHECK(id != 0 && (f.flags & NGHTTP2_FLAG_PADDED) == 0);
        Stream& s = streams_[id];
        FUZZ_CHECK(s.final_seen && !s.ended && !s.reset);
        s.data += f.payload.size();
        if (f.flags & NGHTTP2_FLAG_END_STREAM) ended(id, s);
        return;
      }
      case NGHTTP2_HEADERS: {
        FUZZ_CHECK(id != 0 && id % 2 == 1);
        FUZZ_CHECK((f.flags & (NGHTTP2_FLAG_PADDED | NGHTTP2_FLAG_PRIORITY)) == 0);
        const Stream& s = streams_[id];
        FUZZ_CHECK(!s.ended && !s.reset);
        block_.assign(f.payload);
        block_stream_ = id;
        block_end_stream_ = (f.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (f.flags & NGHTTP2_FLAG_END_HEADERS) {
          headerBlock();
        } else {
          continuing_ = id;
        }
        return;
      }
      case NGHTTP2_CONTINUATION:
        FUZZ_CHECK(continuing_ != 0 && id == continuing_);
        block_.append(f.payload);
        if (f.flags & NGHTTP2_FLAG_END_HEADERS) {
          continuing_ = 0;
          headerBlock();
        }
        return;
      case NGHTTP2_RST_STREAM:
        FUZZ_CHECK(id != 0 && f.payload.size() == 4);
        streams_[id].reset = true;
        return;
      case NGHTTP2_SETTINGS:
        FUZZ_CHECK(id == 0 && f.payload.size() % 6 == 0);
        FUZZ_CHECK((f.flags & NGHTTP2_FLAG_ACK) == 0 || f.payload.empty());
        return;
      case NGHTTP2_PING:
        // A server only answers pings.
        FUZZ_CHECK(id == 0 && f.payload.size() == 8 && (f.flags & NGHTTP2_FLAG_ACK) != 0);
        return;
      case NGHTTP2_GOAWAY:
        FUZZ_CHECK(id == 0 && f.payload.size() >= 8);
        return;
      case NGHTTP2_WINDOW_UPDATE:
        FUZZ_CHECK(f.payload.size() == 4);
        return;
      default:
        std::fprintf(stderr, "frame type %u from the server\n", f.type);
        FUZZ_FAIL("the server sent a frame it never sends (push, priority, unknown)");
    }
  }

  // The response is complete: as many DATA bytes as its content-length said, none for HEAD.
  void ended(int32_t id, Stream& s) {
    s.ended = true;
    const auto method = methods_.find(id);
    if (method == methods_.end()) return;  // not known here
    const bool head = method->second == "HEAD";
    if (head ? s.data == 0 : (!s.content_length || s.data == *s.content_length)) return;
    std::fprintf(stderr, "stream %d (%s): content-length %s, %llu DATA bytes\n", id,
                 escaped(method->second).c_str(),
                 s.content_length ? std::to_string(*s.content_length).c_str() : "none",
                 static_cast<unsigned long long>(s.data));
    FUZZ_FAIL("a response's DATA does not match its content-length");
  }

  void headerBlock() {
    FieldList fields;
    if (!decoder_.decode(block_, &fields)) FUZZ_FAIL("the server's header block does not decode");
    for (const auto& [name, value] : fields)
      FUZZ_TRACE("  %s: %s\n", escaped(name).c_str(), escaped(value).c_str());

    Stream& s = streams_[block_stream_];
    const bool pseudo_allowed = !s.final_seen;
    size_t request_ids = 0, correlation_ids = 0, lengths = 0;
    int status = 0;
    for (size_t i = 0; i < fields.size(); ++i) {
      const auto& [name, value] = fields[i];
      const bool ok = !name.empty() && !hasUpper(name) && validValue(value) &&
                      !h2::isConnectionSpecific(name, value) &&
                      (name.front() != ':' || (pseudo_allowed && i == 0 && name == ":status"));
      if (!ok) {
        std::fprintf(stderr, "stream %d, field %zu: %s: %s\n", block_stream_, i,
                     escaped(name).c_str(), escaped(value).c_str());
        FUZZ_FAIL("a field a client must refuse");
      }
      if (name == ":status") {
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), status);
        FUZZ_CHECK(ec == std::errc() && end == value.data() + value.size() && value.size() == 3);
        FUZZ_CHECK(status >= 100 && status <= 999);
      }
      request_ids += name == "x-request-id";
      correlation_ids += name == "x-correlation-id";
      if (name == "content-length") {
        ++lengths;
        uint64_t length = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
        FUZZ_CHECK(ec == std::errc() && end == value.data() + value.size());
        s.content_length = length;
      }
    }
    if (s.final_seen) {
      FUZZ_CHECK(block_end_stream_);  // trailers end the stream
      ended(block_stream_, s);
      return;
    }
    FUZZ_CHECK(status != 0);
    if (status < 200) {
      FUZZ_CHECK(!block_end_stream_ && status != 101);
      s.content_length.reset();
      return;
    }
    s.final_seen = true;
    if (request_ids != 1 || correlation_ids != 1 || lengths > 1) {
      std::fprintf(stderr, "stream %d: status %d, %zu request ids, %zu correlation ids\n",
                   block_stream_, status, request_ids, correlation_ids);
      FUZZ_FAIL("a response without exactly one of each id");
    }
    if (status == 204 || status == 304) s.content_length = 0;  // no body, whatever it says
    if (block_end_stream_) ended(block_stream_, s);
  }

  const std::map<int32_t, std::string> methods_;
  BlockDecoder decoder_;
  std::map<int32_t, Stream> streams_;
  std::string block_;
  int32_t block_stream_ = 0;
  bool block_end_stream_ = false;
  int32_t continuing_ = 0;
};

}  // namespace viscount::fuzz
