#pragma once

// What the HTTP/1 fuzz targets record of the messages a parser reported, flattened into
// strings so that two runs over the same bytes can be compared whole, and a handler that reads
// back what the proxy encoded for the next hop.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/http1/http1_parser.h"

namespace viscount::fuzz {

using Fields = std::vector<std::pair<std::string, std::string>>;

// The fields a peer would see: every one not marked removed, in order.
inline Fields kept(const HeaderList& headers) {
  Fields out;
  for (const HeaderField& f : headers.fields()) {
    if (!f.removed) out.emplace_back(f.name, f.value);
  }
  return out;
}

// Everything the parser reported of one head, in one string.
inline std::string describeHead(const Http1Head& h) {
  std::string s;
  s.append(h.method).append(" ").append(h.target).append(" host=").append(h.host);
  s.append(" status=").append(std::to_string(h.status));
  s.append(" minor=").append(std::to_string(h.version_minor));
  s.append(" cl=").append(h.content_length ? std::to_string(*h.content_length) : "none");
  s.append(h.chunked ? " chunked" : "").append(h.keep_alive ? " keep-alive" : "");
  s.append(h.expect_continue ? " expect" : "");
  for (const HeaderField& f : h.headers->fields()) {
    s.append("\n").append(f.name).append(": ").append(f.value).append(f.removed ? " (x)" : "");
  }
  return s;
}

inline std::string describeFields(const Fields& fields) {
  std::string s;
  for (const auto& [name, value] : fields)
    s.append(name).append(": ").append(value).append("\n");
  return s;
}

// One message as the receiving side of the next hop parses it.
struct ParsedMessage {
  std::string method;
  std::string target;
  std::string host;
  int status = 0;
  Fields headers;  // as kept() gives them: framing fields are marked removed by the parser
  std::optional<uint64_t> content_length;
  bool chunked = false;
  std::string body;
  Fields trailers;
  bool head_seen = false;
  bool complete = false;
};

// Reads back bytes the proxy encoded: pauses after the first message, so the caller can check
// that the bytes hold exactly one.
class ReadBack final : public Http1ParserHandler {
 public:
  explicit ReadBack(Http1Parser::Kind kind) : parser_(kind, *this) {
    parser_.setMaxHeadBytes(UINT32_MAX);
  }

  Http1Parser& parser() { return parser_; }

  bool onHeadersComplete(Http1Head& h) override {
    message.head_seen = true;
    message.method = h.method;
    message.target = h.target;
    message.host = h.host;
    message.status = h.status;
    message.headers = kept(*h.headers);
    message.content_length = h.content_length;
    message.chunked = h.chunked;
    return true;
  }
  void onBody(std::string_view data) override { message.body.append(data); }
  void onTrailers(HeaderList& trailers) override { message.trailers = kept(trailers); }
  bool onMessageComplete() override {
    message.complete = true;
    return true;
  }

  ParsedMessage message;

 private:
  Http1Parser parser_;
};

}  // namespace viscount::fuzz
