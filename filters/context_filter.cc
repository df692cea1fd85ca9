#include "filters/context_filter.h"

#include <array>
#include <optional>
#include <string_view>

#include "config/reserved_headers.h"
#include "filters/header_sanitizer.h"
#include "filters/trace_context.h"
#include "proxy/http/ascii.h"
#include "proxy/http/header_tokens.h"

namespace viscount {
namespace {

constexpr std::string_view kTraceparentHeader = "traceparent";
constexpr std::string_view kTracestateHeader = "tracestate";
constexpr std::string_view kConnectionHeader = "connection";

// What the client sent under one header name. Copies that disagree make the whole header
// ambiguous, and an ambiguous id is never believed.
class Incoming {
 public:
  void see(std::string_view value) {
    if (count_++ == 0) {
      value_ = value;
    } else if (value != value_) {
      conflicting_ = true;
    }
  }
  bool unambiguous() const { return count_ > 0 && !conflicting_; }
  bool acceptable(const IdPattern& pattern) const {
    return unambiguous() && pattern.matches(value_);
  }
  std::string_view value() const { return value_; }

 private:
  std::string_view value_;
  size_t count_ = 0;
  bool conflicting_ = false;
};

// Indices into ContextFilter::names_, added in this order; the trace headers only when
// trace_context is on.
enum Slot : int {
  kOther = HeaderNameTable::kNotFound,
  kRequestId = 0,
  kCorrelationId,
  kUserId,
  kConnection,
  kTraceparent,
  kTracestate,
};

bool checkHeaderName(std::string_view key, const std::string& name, std::string* error) {
  auto fail = [&](std::string_view why) {
    if (error) *error = std::string(key) + ": " + std::string(why) + " (\"" + name + "\")";
    return false;
  };
  if (name.empty()) return fail("header name must not be empty");
  for (char c : name) {
    if (!isTokenChar(c)) return fail("header name must be an HTTP token");
  }
  if (isHopByHopHeader(name)) return fail("header name is a hop-by-hop header");
  if (isReservedContextHeader(name)) return fail("header name is reserved");
  return true;
}

}  // namespace

std::unique_ptr<ContextFilter> ContextFilter::create(const ContextConfig& config,
                                                     std::string* error) {
  if (!checkHeaderName("context.request_id.header", config.request_id.header, error) ||
      !checkHeaderName("context.correlation_id.header", config.correlation_id.header, error) ||
      !checkHeaderName("context.user_id.header", config.user_id.header, error)) {
    return nullptr;
  }
  const std::string* names[] = {&config.request_id.header, &config.correlation_id.header,
                                &config.user_id.header};
  for (size_t i = 0; i < 3; ++i) {
    for (size_t j = i + 1; j < 3; ++j) {
      if (equalsIgnoreCase(*names[i], *names[j])) {
        if (error) *error = "context: header \"" + *names[i] + "\" is configured twice";
        return nullptr;
      }
    }
  }
  std::string why;
  auto id_pattern = IdPattern::compile(config.id_pattern, &why);
  if (!id_pattern) {
    if (error) *error = "context.id_pattern: " + why;
    return nullptr;
  }
  auto user_id_pattern = IdPattern::compile(config.user_id.pattern, &why);
  if (!user_id_pattern) {
    if (error) *error = "context.user_id.pattern: " + why;
    return nullptr;
  }
  return std::unique_ptr<ContextFilter>(
      new ContextFilter(config, std::move(*id_pattern), std::move(*user_id_pattern)));
}

ContextFilter::ContextFilter(const ContextConfig& config, IdPattern id_pattern,
                             IdPattern user_id_pattern)
    : config_(config),
      request_id_header_(toLowerAscii(config.request_id.header)),
      correlation_id_header_(toLowerAscii(config.correlation_id.header)),
      user_id_header_(toLowerAscii(config.user_id.header)),
      id_pattern_(std::move(id_pattern)),
      user_id_pattern_(std::move(user_id_pattern)) {
  names_.add(request_id_header_);
  names_.add(correlation_id_header_);
  names_.add(user_id_header_);
  names_.add(kConnectionHeader);
  if (config_.trace_context) {
    names_.add(kTraceparentHeader);
    names_.add(kTracestateHeader);
  }
}

void ContextFilter::newId(std::string& out, IdGenerator& ids) const {
  out.resize(IdGenerator::kUuidSize);
  ids.newId(config_.request_id.generate, out.data());
}

void ContextFilter::startTrace(RequestContext& ctx, IdGenerator& ids) {
  ctx.trace_id.resize(IdGenerator::kTraceIdSize);
  ids.traceId(ctx.trace_id.data());
  ctx.span_id.resize(IdGenerator::kSpanIdSize);
  ids.spanId(ctx.span_id.data());
  ctx.traceparent.resize(kTraceparentSize);
  formatTraceparent(ctx.trace_id, ctx.span_id, kSampledFlags, ctx.traceparent.data());
}

void ContextFilter::onRequestHeaders(RequestHead& head, RequestContext& ctx, bool trusted_peer,
                                     IdGenerator& ids,
                                     std::optional<std::string_view> certificate_user) const {
  // A Connection token naming one of our headers (not "connection" itself).
  auto isOurs = [this](std::string_view token) {
    int slot = names_.find(token);
    return slot != kOther && slot != kConnection;
  };

  Incoming request_id, correlation_id, user_id, traceparent;
  std::string_view tracestate;
  std::string tracestate_joined;  // only touched when the client split tracestate in several
  // The sanitizer runs after us and removes whatever Connection names. A client listing one of
  // our headers there must not be able to delete what we decided, so such tokens are dropped
  // from a rewritten Connection header, built only in that rare case.
  bool connection_rewritten = false;
  std::string connection_kept;

  for (auto& f : head.headers.fields()) {
    if (f.removed) continue;
    switch (names_.find(f.name)) {
      case kOther:
        // "X_User_Id" is not ours, but many servers would read it as if it were.
        if (names_.findLookalike(f.name) != kOther) f.removed = true;
        continue;
      case kRequestId:
        request_id.see(f.value);
        break;
      case kCorrelationId:
        correlation_id.see(f.value);
        break;
      case kUserId:
        user_id.see(f.value);
        break;
      case kTraceparent:
        traceparent.see(f.value);
        break;
      case kTracestate: {
        std::string_view v = trimOws(f.value);
        if (v.empty()) break;
        if (tracestate.empty()) {
          tracestate = v;
        } else {
          if (tracestate_joined.empty()) tracestate_joined.assign(tracestate);
          tracestate_joined.append(",").append(v);
        }
        break;
      }
      case kConnection: {
        bool lists_ours = false;
        forEachListElement(f.value, [&](std::string_view t) { lists_ours |= isOurs(t); });
        if (!lists_ours) continue;
        connection_rewritten = true;
        forEachListElement(f.value, [&](std::string_view t) {
          if (isOurs(t)) return;
          if (!connection_kept.empty()) connection_kept.append(", ");
          connection_kept.append(t);
        });
        break;
      }
    }
    f.removed = true;
  }

  if (config_.request_id.preserve_incoming && trusted_peer && request_id.acceptable(id_pattern_)) {
    ctx.request_id.assign(request_id.value());
  } else {
    newId(ctx.request_id, ids);
  }
  if (trusted_peer && correlation_id.acceptable(id_pattern_)) {
    ctx.correlation_id.assign(correlation_id.value());
  } else {
    newId(ctx.correlation_id, ids);
  }
  if (certificate_user) {
    if (user_id_pattern_.matches(*certificate_user)) {
      ctx.user_id = std::string(*certificate_user);
    } else {
      ctx.user_id.reset();
    }
  } else if (trusted_peer && user_id.acceptable(user_id_pattern_)) {
    ctx.user_id = std::string(user_id.value());
  } else {
    ctx.user_id.reset();
  }

  bool continued = false;
  ctx.trace_sampled_by_caller = false;
  if (!config_.trace_context) {
    ctx.trace_id.clear();
    ctx.span_id.clear();
    ctx.traceparent.clear();
  } else {
    // Trace context is propagated from any peer: it correlates, it does not authorise.
    std::optional<TraceParent> parent;
    if (traceparent.unambiguous()) parent = parseTraceparent(traceparent.value());
    if (parent) {
      continued = true;
      ctx.trace_id.assign(parent->trace_id);
      ctx.span_id.resize(IdGenerator::kSpanIdSize);
      do {
        ids.spanId(ctx.span_id.data());
      } while (ctx.span_id == parent->parent_id);
      ctx.traceparent.resize(kTraceparentSize);
      formatTraceparent(ctx.trace_id, ctx.span_id, parent->flags, ctx.traceparent.data());
      // Bit 0 of the flags; the access log keeps every line of a trace its caller samples.
      const char low = parent->flags[1];  // lowercase hex, checked by the parser
      ctx.trace_sampled_by_caller = ((low <= '9' ? low - '0' : low - 'a' + 10) & 1) != 0;
    } else {
      startTrace(ctx, ids);
    }
  }

  HeaderList& headers = head.headers;
  if (connection_rewritten && !connection_kept.empty()) {
    headers.addCopy(kConnectionHeader, std::move(connection_kept));
  }
  headers.add(request_id_header_, ctx.request_id);
  headers.add(correlation_id_header_, ctx.correlation_id);
  if (ctx.user_id) headers.add(user_id_header_, *ctx.user_id);
  if (config_.trace_context) {
    headers.add(kTraceparentHeader, ctx.traceparent);
    // A tracestate without the traceparent it belongs to means nothing, so a new trace drops it;
    // so does an invalid one, and an overlong one is shortened.
    std::string shortened;
    const std::string_view given = tracestate_joined.empty() ? tracestate : tracestate_joined;
    if (continued && !tracestate.empty() && checkTracestate(given, &shortened)) {
      if (!shortened.empty()) {
        headers.add(kTracestateHeader, headers.keep(std::move(shortened)));
      } else {
        headers.add(kTracestateHeader, tracestate_joined.empty()
                                           ? tracestate
                                           : headers.keep(std::move(tracestate_joined)));
      }
    }
  }
}

void ContextFilter::ensureIds(RequestContext& ctx, IdGenerator& ids) const {
  if (ctx.request_id.empty()) newId(ctx.request_id, ids);
  if (ctx.correlation_id.empty()) newId(ctx.correlation_id, ids);
  if (config_.trace_context && ctx.trace_id.empty()) startTrace(ctx, ids);
}

void ContextFilter::onResponseHeaders(ResponseHead& head, const RequestContext& ctx) const {
  if (!config_.echo_in_response) return;
  for (auto& f : head.headers.fields()) {
    if (f.removed) continue;
    // An upstream's "x_request_id" would sit beside ours and a client (or a CGI-style gateway in
    // front of it) could read it as the id.
    if (equalsLowercase(f.name, request_id_header_) ||
        equalsLowercase(f.name, correlation_id_header_) ||
        isUnderscoreLookalike(f.name, request_id_header_) ||
        isUnderscoreLookalike(f.name, correlation_id_header_)) {
      f.removed = true;
    }
  }
  if (!ctx.request_id.empty()) head.headers.add(request_id_header_, ctx.request_id);
  if (!ctx.correlation_id.empty()) head.headers.add(correlation_id_header_, ctx.correlation_id);
}

}  // namespace viscount
