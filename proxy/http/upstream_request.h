#pragma once

// The request as it will go upstream, copied out of the client's receive buffer at the end of
// the request-headers phase (the client buffer is reused for the body). One arena holds every
// byte, so the copy is a handful of memcpy calls and survives retries on another connection.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/http_message.h"

namespace viscount {

class UpstreamRequest {
 public:
  void assign(const RequestHead& head);
  // Swaps the two requests' buffers and clears this one's (RequestBuffers hands capacity from
  // one request to the next). Only assign() writes them, so no contents ever pass.
  void swapBuffers(UpstreamRequest& other) {
    arena_.swap(other.arena_);
    headers_.swap(other.headers_);
    arena_.clear();
    headers_.clear();
  }
  size_t bufferCapacity() const {
    return arena_.capacity() + headers_.capacity() * sizeof(headers_[0]);
  }

  std::string_view method() const { return view(method_); }
  std::string_view target() const { return view(target_); }
  std::string_view authority() const { return view(authority_); }
  bool isHead() const { return method() == "HEAD"; }
  // The Upgrade tokens asked for (RequestHead::upgrade); empty: not an upgrade.
  std::string_view upgrade() const { return view(upgrade_); }
  bool idempotent() const;

  template <class F>
  void forEachHeader(F&& f) const {
    for (const auto& h : headers_)
      f(view(h.first), view(h.second));
    if (!deadline_name_.empty())
      f(deadline_name_, std::string_view(deadline_value_, deadline_len_));
    if (grpc_timeout_len_ != 0)
      f(std::string_view("grpc-timeout"), std::string_view(grpc_timeout_, grpc_timeout_len_));
  }

  // The remaining budget of this attempt, sent as `name: ms` after the other headers. `name`
  // must outlive the request (it is the config's string).
  void setDeadline(std::string_view name, uint64_t ms);
  // The same budget for a gRPC service, as `grpc-timeout` (the client's copy was taken out by
  // the request phase, filters/grpc_deadline.h).
  void setGrpcTimeout(uint64_t ms);

  std::optional<uint64_t> content_length;
  bool chunked = false;  // body of unknown length (HTTP/1 chunked, HTTP/2 without content-length)
  bool te_trailers = false;  // the client sent `TE: trailers`: HTTP/2 upstreams get it again
  bool hasBody() const { return chunked || (content_length && *content_length > 0); }

 private:
  struct Span {
    uint32_t off = 0;
    uint32_t len = 0;
  };
  Span add(std::string_view s) {
    Span sp{static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(s.size())};
    arena_.append(s);
    return sp;
  }
  std::string_view view(Span s) const { return {arena_.data() + s.off, s.len}; }

  std::string arena_;
  std::string_view deadline_name_;
  char deadline_value_[20] = {};
  uint8_t deadline_len_ = 0;
  char grpc_timeout_[9] = {};  // kGrpcTimeoutChars
  uint8_t grpc_timeout_len_ = 0;
  Span method_, target_, authority_, upgrade_;
  std::vector<std::pair<Span, Span>> headers_;
};

}  // namespace viscount
