#pragma once

// Protocol-neutral request and response heads. Codecs (HTTP/1 via llhttp, HTTP/2 via nghttp2)
// produce them, filters edit them, codecs serialise them again. Names and values are views into
// the codec's receive buffer (valid during the headers phase only); values a filter creates are
// kept in `owned` (stable addresses) or in the RequestContext, which outlives the head.

#include <cstdint>
#include <forward_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/ascii.h"
#include "proxy/http/request_context.h"

namespace viscount {

// The largest response head (names and values) an upstream codec accepts, HTTP/1 or HTTP/2; the
// HTTP/2 server sizes what it may send to clients from it.
constexpr size_t kMaxResponseHeadBytes = 64 * 1024;

struct HeaderField {
  std::string_view name;
  std::string_view value;
  bool removed = false;  // filters drop headers by marking them; serialisers skip them
};

class HeaderList {
 public:
  std::vector<HeaderField>& fields() { return fields_; }
  const std::vector<HeaderField>& fields() const { return fields_; }

  void add(std::string_view name, std::string_view value) { fields_.push_back({name, value}); }
  // Adds a header whose value is copied into storage owned by this list.
  void addCopy(std::string_view name, std::string value) {
    owned_.push_front(std::move(value));
    fields_.push_back({name, owned_.front()});
  }
  std::string_view keep(std::string value) {
    owned_.push_front(std::move(value));
    return owned_.front();
  }

  // First header with this name that is not removed.
  const HeaderField* find(std::string_view name) const {
    for (const auto& f : fields_) {
      if (!f.removed && equalsIgnoreCase(f.name, name)) return &f;
    }
    return nullptr;
  }
  size_t count(std::string_view name) const {
    size_t n = 0;
    for (const auto& f : fields_)
      n += (!f.removed && equalsIgnoreCase(f.name, name)) ? 1 : 0;
    return n;
  }
  // Marks every copy of `name` removed; returns how many were.
  size_t remove(std::string_view name) {
    size_t n = 0;
    for (auto& f : fields_) {
      if (!f.removed && equalsIgnoreCase(f.name, name)) {
        f.removed = true;
        ++n;
      }
    }
    return n;
  }
  void clear() {
    fields_.clear();
    owned_.clear();
  }

 private:
  std::vector<HeaderField> fields_;
  std::forward_list<std::string> owned_;
};

// RFC 9110 section 7.2: a Host value (or :authority) is uri-host [":" port], and userinfo is
// not allowed. Anything else would reach the upstream's virtual hosting, URL building and logs
// as the client wrote it. An empty value is valid: the target has no authority.
inline bool isValidAuthority(std::string_view authority) {
  auto hex = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  };
  // reg-name: unreserved, sub-delims and pct-encoded (RFC 3986 section 3.2.2).
  auto reg_name = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
  };
  size_t i = 0;
  const size_t n = authority.size();
  if (n > 0 && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (i = 1; i < close; ++i) {
      if (!hex(authority[i]) && authority[i] != ':' && authority[i] != '.') return false;
    }
    i = close + 1;
  } else {
    for (; i < n && authority[i] != ':'; ++i) {
      if (authority[i] == '%') {
        if (i + 2 >= n || !hex(authority[i + 1]) || !hex(authority[i + 2])) return false;
        i += 2;
      } else if (!reg_name(authority[i])) {
        return false;
      }
    }
  }
  if (i == n) return true;
  if (authority[i] != ':' || n - i - 1 > 5) return false;
  for (++i; i < n; ++i) {
    if (authority[i] < '0' || authority[i] > '9') return false;
  }
  return true;
}

struct RequestHead {
  std::string_view method;
  std::string_view target;     // origin-form path and query, or "*" for OPTIONS
  std::string_view authority;  // Host (HTTP/1) or :authority (HTTP/2)
  std::string_view scheme;     // "http" or "https": how the client reached us
  Protocol protocol = Protocol::kHttp11;
  HeaderList headers;  // without Host / pseudo-headers

  // Framing facts, decided by the codec. Filters never touch them; serialisers rebuild framing
  // headers from them.
  std::optional<uint64_t> content_length;
  bool chunked = false;          // body of unknown length follows
  bool expect_continue = false;  // client sent "Expect: 100-continue"
  bool keep_alive = true;        // the client wants the connection kept open after this request
  // The client sent `TE: trailers` (set by the sanitizer, which removes TE with the other
  // hop-by-hop fields). HTTP/2 upstreams get `te: trailers` again: gRPC servers built on gRPC's
  // C core refuse requests without it.
  bool te_trailers = false;
  // The Upgrade tokens (RFC 9110 section 7.8) the client asked for that its listener allows,
  // as sent upstream with `Connection: upgrade`; empty: not an upgrade. Set by the codec (an
  // HTTP/1 Upgrade, or an HTTP/2 extended CONNECT), never by a filter.
  std::string_view upgrade;

  bool hasBody() const { return chunked || (content_length && *content_length > 0); }
};

struct ResponseHead {
  int status = 200;
  HeaderList headers;
  std::optional<uint64_t> content_length;
  bool chunked = false;       // body of unknown length follows
  bool keep_alive = true;     // upstream connection reusable after it (HTTP/1 upstreams)
  bool close_client = false;  // the proxy closes the client connection after this response
  // A 101: the protocol both sides switch to (the upstream's Upgrade, which the sanitizer
  // removed with the other hop-by-hop fields). The downstream codec says it again.
  std::string_view upgrade;
};

}  // namespace viscount
