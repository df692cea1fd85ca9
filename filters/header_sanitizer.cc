#include "filters/header_sanitizer.h"

#include <array>
#include <string>

#include "filters/header_name_table.h"
#include "proxy/http/header_tokens.h"

namespace viscount {
namespace {

// Index 0 is "connection", whose value names more headers to drop; index 3 is "te", whose
// "trailers" the request remembers.
constexpr HeaderNameTable kHopByHop = {
    "connection",        "keep-alive", "proxy-connection", "te",
    "transfer-encoding", "upgrade",    "http2-settings",
};
constexpr int kConnection = 0;
constexpr int kTe = 3;

// Connection tokens that never remove anything: the target host is not the client's to drop.
constexpr std::array<std::string_view, 1> kNeverListable = {"host"};

bool isNeverListable(std::string_view token) {
  for (auto name : kNeverListable) {
    if (equalsIgnoreCase(token, name)) return true;
  }
  return false;
}

void removeConnectionListed(HeaderList& headers, std::string_view connection_value) {
  forEachListElement(connection_value, [&](std::string_view token) {
    if (!isNeverListable(token) && !isHopByHopHeader(token)) headers.remove(token);
  });
}

// Returns whether a TE field listed "trailers" (what HTTP/2 upstreams get again).
bool removeHopByHop(HeaderList& headers) {
  bool te_trailers = false;
  auto& fields = headers.fields();
  // Indexing, not iterators: removeConnectionListed marks fields of this same vector.
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].removed) continue;
    int hop = kHopByHop.find(fields[i].name);
    if (hop == HeaderNameTable::kNotFound) {
      // "Transfer_Encoding" would join the framing the proxy sends in a CGI-style environ.
      if (kHopByHop.findLookalike(fields[i].name) != HeaderNameTable::kNotFound) {
        fields[i].removed = true;
      }
      continue;
    }
    if (hop == kConnection) removeConnectionListed(headers, fields[i].value);
    if (hop == kTe) {
      forEachListElement(fields[i].value, [&](std::string_view token) {
        if (equalsIgnoreCase(token, "trailers")) te_trailers = true;
      });
    }
    fields[i].removed = true;
  }
  return te_trailers;
}

}  // namespace

bool isHopByHopHeader(std::string_view name) {
  return kHopByHop.find(name) != HeaderNameTable::kNotFound;
}

void sanitizeRequestHeaders(RequestHead& head) {
  head.te_trailers = removeHopByHop(head.headers);
}

void sanitizeResponseHeaders(ResponseHead& head) {
  removeHopByHop(head.headers);
}

void sanitizeTrailers(HeaderList& trailers) {
  for (HeaderField& f : trailers.fields()) {
    if (isHopByHopHeader(f.name) || equalsIgnoreCase(f.name, "content-length") ||
        equalsIgnoreCase(f.name, "host") || equalsIgnoreCase(f.name, "trailer") ||
        equalsIgnoreCase(f.name, "content-type") || equalsIgnoreCase(f.name, "authorization")) {
      f.removed = true;
    }
  }
}

}  // namespace viscount
