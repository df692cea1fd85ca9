#include "filters/forwarded_headers.h"

#include <string>

#include "filters/header_name_table.h"
#include "proxy/http/header_tokens.h"

namespace viscount {
namespace {

// The first four are the ones viscount can set; the rest it only ever removes or passes.
constexpr HeaderNameTable kIdentity = {
    "x-forwarded-for",          "x-forwarded-proto", "x-real-ip",          "forwarded",
    "x-forwarded-host",         "x-forwarded-port",  "x-forwarded-prefix", "x-forwarded-server",
    "x-original-forwarded-for", "x-client-ip",       "true-client-ip",     "cf-connecting-ip",
    "x-cluster-client-ip",      "fastly-client-ip",
};
enum : int { kFor = 0, kProto, kRealIp, kForwarded };

std::string_view canonicalScheme(std::string_view scheme) {
  return equalsIgnoreCase(scheme, "https") ? "https" : "http";
}

// Joins the trimmed, non-empty values of a list header's copies with ", ".
void appendElement(std::string& list, std::string_view value) {
  value = trimOws(value);
  if (value.empty()) return;
  if (!list.empty()) list.append(", ");
  list.append(value);
}

// RFC 7239 section 6: an IPv6 node is bracketed, and then must be a quoted string.
std::string forwardedElement(std::string_view client_ip, std::string_view scheme) {
  std::string element = "for=";
  if (client_ip.find(':') != std::string_view::npos) {
    element.append("\"[").append(client_ip).append("]\"");
  } else {
    element.append(client_ip);
  }
  element.append(";proto=").append(scheme);
  return element;
}

// The copies a peer sent of one header: the first value, and whether others disagreed.
struct Single {
  std::string_view value;
  size_t count = 0;
  bool agreed = true;
  void see(std::string_view v) {
    v = trimOws(v);
    if (count++ == 0) {
      value = v;
    } else if (v != value) {
      agreed = false;
    }
  }
  bool usable() const { return count > 0 && agreed && !value.empty(); }
};

}  // namespace

bool isClientIdentityHeader(std::string_view name) {
  return kIdentity.find(name) != HeaderNameTable::kNotFound;
}

void setForwardedHeaders(RequestHead& head, std::string_view client_ip, bool trusted_peer,
                         const ContextConfig::Forwarded& options) {
  std::string chain;
  std::string forwarded;
  Single proto;
  Single real_ip;
  for (auto& f : head.headers.fields()) {
    if (f.removed) continue;
    const int slot = kIdentity.find(f.name);
    if (slot == HeaderNameTable::kNotFound) {
      // "X_Real_IP" is HTTP_X_REAL_IP to a CGI-style server: never believed, whoever sends it.
      if (kIdentity.findLookalike(f.name) != HeaderNameTable::kNotFound) f.removed = true;
      continue;
    }
    if (!trusted_peer) {
      f.removed = true;
      continue;
    }
    switch (slot) {
      case kFor:
        appendElement(chain, f.value);
        f.removed = true;
        break;
      case kProto:
        proto.see(f.value);
        f.removed = true;
        break;
      case kRealIp:
        // Passes untouched unless viscount sets it, and then it keeps one unambiguous copy.
        if (options.x_real_ip) {
          real_ip.see(f.value);
          f.removed = true;
        }
        break;
      case kForwarded:
        if (options.forwarded) {
          appendElement(forwarded, f.value);
          f.removed = true;
        }
        break;
      default:
        break;  // a trusted proxy's claim about the original request
    }
  }

  HeaderList& headers = head.headers;
  if (!chain.empty()) chain.append(", ");
  chain.append(client_ip);
  headers.addCopy("x-forwarded-for", std::move(chain));

  const bool keep_proto = proto.count == 1 && (equalsIgnoreCase(proto.value, "http") ||
                                               equalsIgnoreCase(proto.value, "https"));
  const std::string_view scheme = canonicalScheme(keep_proto ? proto.value : head.scheme);
  headers.add("x-forwarded-proto", scheme);

  if (options.x_real_ip) {
    headers.addCopy("x-real-ip", std::string(real_ip.usable() ? real_ip.value : client_ip));
  }
  if (options.forwarded) {
    // Our hop says how the client reached us, whatever x-forwarded-proto carries on.
    appendElement(forwarded, forwardedElement(client_ip, canonicalScheme(head.scheme)));
    headers.addCopy("forwarded", std::move(forwarded));
  }
}

}  // namespace viscount
