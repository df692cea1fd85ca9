#include "proxy/http/upstream_request.h"

#include <charconv>

#include "proxy/http/grpc_wire.h"

namespace viscount {

void UpstreamRequest::assign(const RequestHead& head) {
  size_t bytes =
      head.method.size() + head.target.size() + head.authority.size() + head.upgrade.size() + 8;
  size_t count = 0;
  for (const auto& f : head.headers.fields()) {
    if (f.removed) continue;
    bytes += f.name.size() + f.value.size();
    ++count;
  }
  arena_.clear();
  arena_.reserve(bytes);
  headers_.clear();
  headers_.reserve(count);
  method_ = add(head.method);
  target_ = add(head.target);
  authority_ = add(head.authority);
  upgrade_ = add(head.upgrade);
  for (const auto& f : head.headers.fields()) {
    if (f.removed) continue;
    Span n = add(f.name);
    Span v = add(f.value);
    headers_.emplace_back(n, v);
  }
  content_length = head.content_length;
  chunked = head.chunked;
  te_trailers = head.te_trailers;
  deadline_name_ = {};
  grpc_timeout_len_ = 0;
}

void UpstreamRequest::setDeadline(std::string_view name, uint64_t ms) {
  deadline_name_ = name;
  const auto result = std::to_chars(deadline_value_, deadline_value_ + sizeof(deadline_value_), ms);
  deadline_len_ = static_cast<uint8_t>(result.ptr - deadline_value_);
}

void UpstreamRequest::setGrpcTimeout(uint64_t ms) {
  static_assert(sizeof(grpc_timeout_) == kGrpcTimeoutChars);
  grpc_timeout_len_ = static_cast<uint8_t>(formatGrpcTimeout(grpc_timeout_, ms));
}

bool UpstreamRequest::idempotent() const {
  // RFC 9110 section 9.2.2.
  const std::string_view m = method();
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

}  // namespace viscount
