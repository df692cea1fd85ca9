#pragma once

// The context-ids filter: decides, once per request, the request id, correlation id, user id and
// W3C trace context the upstream sees, records them in the RequestContext (which the access log
// reads) and echoes the ids on the response. Rules are in filters/README.md.
//
// One instance per config snapshot, shared by all workers: every method is const and touches no
// shared state; randomness comes from the calling worker's IdGenerator.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "filters/header_name_table.h"
#include "filters/id_generator.h"
#include "filters/id_pattern.h"
#include "proxy/http/http_message.h"
#include "proxy/http/request_context.h"

namespace viscount {

class ContextFilter {
 public:
  // Validates the header names and compiles both patterns. nullptr with `*error` set (prefixed
  // with the config key, e.g. "context.id_pattern: ...") when the config cannot be used.
  static std::unique_ptr<ContextFilter> create(const ContextConfig& config, std::string* error);

  // Request headers phase. Every client copy of the context headers is marked removed and
  // exactly one of each chosen header is appended. Appended names view this filter's strings and
  // values view `ctx`'s strings: both must outlive `head`, and `ctx`'s ids must not change while
  // `head` is in use.
  // `certificate_user`: set when the listener takes the user id from verified client
  // certificates (the subject's CN; empty when the client presented none). Then it is the only
  // source: no header can set or keep a user id, from any peer.
  void onRequestHeaders(RequestHead& head, RequestContext& ctx, bool trusted_peer, IdGenerator& ids,
                        std::optional<std::string_view> certificate_user = std::nullopt) const;

  // For replies the proxy makes before or without the request phase (a 400 from the parser):
  // fills whichever ids are still empty, so the error and the access log line carry them.
  void ensureIds(RequestContext& ctx, IdGenerator& ids) const;

  // Response headers phase: when echo_in_response, the client sees exactly our request id and
  // correlation id, whatever the upstream sent under those names.
  void onResponseHeaders(ResponseHead& head, const RequestContext& ctx) const;

  const ContextConfig& config() const { return config_; }

  ContextFilter(const ContextFilter&) = delete;
  ContextFilter& operator=(const ContextFilter&) = delete;

 private:
  ContextFilter(const ContextConfig& config, IdPattern id_pattern, IdPattern user_id_pattern);

  void newId(std::string& out, IdGenerator& ids) const;
  static void startTrace(RequestContext& ctx, IdGenerator& ids);

  ContextConfig config_;
  // Lowercase: what goes on the wire (HTTP/2 requires lowercase names).
  std::string request_id_header_;
  std::string correlation_id_header_;
  std::string user_id_header_;
  // Every name the request phase looks at, so each client header costs one lookup. Views the
  // strings above, hence the deleted copy.
  HeaderNameTable names_;
  IdPattern id_pattern_;
  IdPattern user_id_pattern_;
};

}  // namespace viscount
