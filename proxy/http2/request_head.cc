#include "proxy/http2/request_head.h"

#include <random>
#include <string>

#include "proxy/http2/content_length.h"

namespace viscount::h2 {
namespace {

// The request target goes upstream in an HTTP/1 request line, so it must be one there: visible
// ASCII, as the HTTP/1 listener's parser accepts. nghttp2 checks :path for control bytes and
// spaces only, but absolute-path and query (RFC 9113 section 8.3.1) are ASCII: obs-text in it
// would reach the upstream as a request line a strict parser refuses.
bool isVisibleAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

bool buildRequestHead(const HeaderArena& block, bool tls, RequestHead& head, ErrorCode* error) {
  std::string_view host;
  std::string_view protocol;
  size_t cookies = 0;
  for (const auto [name, value] : block) {
    if (name.front() == ':') {
      if (name == ":method") head.method = value;
      if (name == ":path") head.target = value;
      if (name == ":authority") head.authority = value;
      if (name == ":protocol") protocol = value;
      continue;  // :scheme is the client's claim; the connection says how it reached us
    }
    if (name == "host") {
      host = value;
      continue;
    }
    if (name == "content-length") {
      if (!takeContentLength(head.headers, value, &head.content_length)) {
        *error = ErrorCode::kBadRequest;
        return false;
      }
      continue;
    }
    if (name == "cookie") ++cookies;
    head.headers.add(name, value);
    if (name == "expect") {
      if (value != "100-continue") {
        *error = ErrorCode::kExpectationFailed;
        return false;
      }
      head.expect_continue = true;
      head.headers.fields().back().removed = true;  // answered here
    }
  }
  if (head.authority.empty()) head.authority = host;
  // RFC 9113 section 8.2.3: the cookie may arrive split; an HTTP/1 upstream wants one field.
  if (cookies > 1) {
    std::string joined;
    for (HeaderField& f : head.headers.fields()) {
      if (f.name != "cookie") continue;
      if (!joined.empty()) joined += "; ";
      joined += f.value;
      f.removed = true;
    }
    head.headers.addCopy("cookie", std::move(joined));
  }
  if (head.method == "CONNECT" && !protocol.empty()) {
    // RFC 8441: an extended CONNECT opens a websocket on this stream. Upstream it becomes the
    // HTTP/1.1 upgrade it stands for (a GET without a body; RequestHead::upgrade); the caller
    // checks the protocol against the listener's.
    if (head.content_length.value_or(0) != 0) {
      *error = ErrorCode::kBadRequest;
      return false;
    }
    head.method = "GET";
    head.upgrade = protocol;
    head.content_length = 0;
  } else if (head.method == "CONNECT") {
    *error = ErrorCode::kNotImplemented;
    return false;
  }
  if (head.target.empty() ||
      (head.target.front() != '/' && !(head.target == "*" && head.method == "OPTIONS")) ||
      !isVisibleAscii(head.target)) {
    *error = ErrorCode::kBadRequest;
    return false;
  }
  if (!isValidAuthority(head.authority)) {
    *error = ErrorCode::kBadRequest;
    return false;
  }
  head.scheme = tls ? "https" : "http";
  head.protocol = Protocol::kHttp2;
  head.keep_alive = true;
  return true;
}

std::string websocketKey() {
  // A nonce, not a secret: the upstream only proves with it that it speaks websocket.
  thread_local std::mt19937_64 random{std::random_device{}()};
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  unsigned char bytes[18] = {};  // 16 random bytes and two zero bytes that pad the last group
  const uint64_t a = random();
  const uint64_t b = random();
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<unsigned char>(a >> (8 * i));
    bytes[8 + i] = static_cast<unsigned char>(b >> (8 * i));
  }
  std::string key;
  for (int i = 0; i < 18; i += 3) {
    const uint32_t group =
        (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6)
      key.push_back(kAlphabet[(group >> shift) & 63]);
  }
  key.resize(22);  // 16 bytes are 22 characters ...
  key += "==";     // ... and two of padding
  return key;
}

void buildTrailers(const HeaderArena& block, HeaderList& trailers) {
  for (const auto [name, value] : block) {
    if (name.front() == ':') continue;  // nghttp2 refuses them in trailers already
    // Copied into the list: the Exchange keeps the trailers until its upstream connection is
    // ready, long after the arena they were decoded into is cleared.
    trailers.add(trailers.keep(std::string(name)), trailers.keep(std::string(value)));
  }
}

}  // namespace viscount::h2
