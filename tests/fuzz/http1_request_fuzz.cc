// Fuzzes what a client's bytes reach on an HTTP/1 listener. The input is the byte stream of one
// client connection. Http1Parser runs in request mode, fed as Http1ServerConnection feeds it
// (the buffer kept while a head is incomplete and dropped otherwise, one request at a time
// through the pipelining pause, nothing more after a request that ends the connection); each
// head becomes a RequestHead (makeRequestHead) rewritten by the request phase's filters
// (filterRequestHead: context ids, hop-by-hop sanitizing, forwarding and deadline headers), and
// is encoded for the upstream with its body and sanitized trailers.
//
// Checked beyond the sanitizers:
// - the same bytes split into other pieces give the same requests, bodies, trailers and outcome;
// - after the filters there is exactly one of each context and forwarding header, no hop-by-hop
//   or framing header of the client's, no user id from an untrusted peer, valid trace headers
//   and a budget no larger than the upstream's;
// - what goes upstream parses back into exactly one request, the one the filters decided;
// - an upgrade (allowedUpgrade, as the server decides it) is only ever an HTTP/1.1 request
//   without a body that asked for it in Connection, carries only allowed tokens and never h2c,
//   and goes upstream as exactly one `connection: upgrade` and one `upgrade`.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filters/context_filter.h"
#include "filters/header_name_table.h"
#include "filters/header_sanitizer.h"
#include "filters/id_generator.h"
#include "filters/trace_context.h"
#include "proxy/http/header_tokens.h"
#include "proxy/http/upstream_request.h"
#include "proxy/http1/http1_encoder.h"
#include "proxy/http1/http1_parser.h"
#include "proxy/http1/http1_server.h"
#include "proxy/lifecycle/exchange.h"
#include "proxy/net/buffer.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/http1_messages.h"

namespace viscount::fuzz {
namespace {

constexpr Duration kUpstreamBudget = 15s;
constexpr std::string_view kUpstreamAuthority = "app.internal:8000";
constexpr std::string_view kDeadlineHeader = "x-request-timeout-ms";
constexpr std::string_view kCertificateUser = "alice@example.com";
// A listener's `upgrades`: the default and one more protocol allowed by name.
const std::vector<std::string> kAllowedUpgrades = {"websocket", "my-proto"};

// Two context configs: the defaults (table-driven id patterns, trace context on), and one with
// other header names, uuid7, trace context off and patterns that std::regex has to run.
struct Setup {
  Setup() {
    ContextConfig custom;
    custom.request_id.header = "X-Req";
    custom.request_id.generate = IdFormat::kUuid7;
    custom.correlation_id.header = "x-corr";
    custom.user_id.header = "X-Auth-User";
    custom.user_id.pattern = "^[a-z]+@[a-z.]+$";
    custom.trace_context = false;
    custom.id_pattern = "^(req-[0-9a-f]+|[A-Z]{2,8})$";
    for (const ContextConfig& config : {ContextConfig{}, custom}) {
      std::string error;
      filters.push_back(ContextFilter::create(config, &error));
      FUZZ_CHECK(filters.back() != nullptr);
      std::string why;
      id_patterns.push_back(*IdPattern::compile(config.id_pattern, &why));
      user_patterns.push_back(*IdPattern::compile(config.user_id.pattern, &why));
    }
  }
  std::vector<std::unique_ptr<ContextFilter>> filters;
  std::vector<IdPattern> id_patterns;
  std::vector<IdPattern> user_patterns;
  IdGenerator ids;
};

Setup& setup() {
  static Setup* s = new Setup();  // never destroyed: no teardown order to think about
  return *s;
}

struct Options {
  size_t filter = 0;
  bool trusted = false;
  bool tls = false;
  std::optional<std::string_view> certificate_user;
  std::string_view deadline_header = kDeadlineHeader;
  uint64_t max_head_bytes = 60 * 1024;
  size_t max_fields = 100;
};

Options choose(Choices& c) {
  Options o;
  o.filter = c.below(2);
  o.trusted = c.oneIn(2);
  o.tls = c.oneIn(4);
  if (c.oneIn(8)) o.certificate_user = c.oneIn(2) ? kCertificateUser : "";
  if (c.oneIn(4)) o.deadline_header = {};
  if (c.oneIn(4)) {
    o.max_head_bytes = 32 + c.below(1024);
    o.max_fields = 1 + c.below(16);
  }
  return o;
}

bool isUuid(std::string_view s) {
  if (s.size() != IdGenerator::kUuidSize) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = s[i];
    if (dash != (c == '-')) return false;
    if (!dash && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The upstream side of one request: the request phase's rewrite, the checks on its result, and
// the bytes Http1ClientCodec would send, read back at the end.
class UpstreamSide {
 public:
  explicit UpstreamSide(const Options& options) : options_(options) {}

  void onHead(RequestHead& head) {
    Setup& s = setup();
    const ContextFilter& filter = *s.filters[options_.filter];
    ctx_ = RequestContext{};
    const RequestFilterInput input{.context = filter,
                                   .trusted = options_.trusted,
                                   .client_ip = "192.0.2.7",
                                   .certificate_user = options_.certificate_user,
                                   .deadline_header = options_.deadline_header,
                                   .budget = kUpstreamBudget,
                                   .upstream_authority = kUpstreamAuthority};
    const Duration budget = filterRequestHead(head, ctx_, s.ids, input);
    checkFiltered(head, filter.config(), budget);
    checkUpgrade(head);

    request_.assign(head);
    if (!options_.deadline_header.empty()) {
      request_.setDeadline(options_.deadline_header, static_cast<uint64_t>(budget.count()));
    }
    out_.clear();
    encodeRequestHead(out_, request_);

    expected_ = ParsedMessage{};
    expected_.method = head.method;
    expected_.target = head.target;
    expected_.host = head.authority;
    expected_.headers = kept(head.headers);
    if (!options_.deadline_header.empty()) {
      expected_.headers.emplace_back(options_.deadline_header, std::to_string(budget.count()));
    }
    if (!head.upgrade.empty()) {
      expected_.headers.emplace_back("connection", "upgrade");
      expected_.headers.emplace_back("upgrade", std::string(head.upgrade));
    }
    expected_.chunked = head.chunked;
    active_ = true;
  }

  void onBody(std::string_view data) {
    if (!active_) return;
    expected_.body.append(data);
    if (request_.chunked) {
      encodeChunk(out_, data);
    } else {
      out_.append(data);
    }
  }

  void onTrailers(HeaderList& trailers) {
    if (!active_) return;
    sanitizeTrailers(trailers);
    for (const HeaderField& f : trailers.fields()) {
      FUZZ_CHECK(f.removed || !isHopByHopHeader(f.name));
    }
    if (request_.chunked) {
      expected_.trailers = kept(trailers);
      encodeLastChunk(out_, &trailers);
      trailers_sent_ = true;
    }
  }

  void onComplete() {
    if (!active_) return;
    active_ = false;
    if (request_.chunked && !trailers_sent_) encodeLastChunk(out_, nullptr);
    trailers_sent_ = false;
    readBack();
  }

 private:
  static void checkUpgrade(const RequestHead& head) {
    if (head.upgrade.empty()) return;
    FUZZ_CHECK(head.protocol == Protocol::kHttp11 && !head.hasBody());
    forEachListElement(head.upgrade, [&](std::string_view token) {
      const std::string_view name = token.substr(0, token.find('/'));
      FUZZ_CHECK(!equalsIgnoreCase(name, "h2c"));
      bool allowed = false;
      for (const std::string& a : kAllowedUpgrades)
        allowed = allowed || equalsIgnoreCase(name, a);
      FUZZ_CHECK(allowed);
    });
  }

  void checkFiltered(const RequestHead& head, const ContextConfig& config, Duration budget) {
    const HeaderList& h = head.headers;
    const std::string request_id = toLowerAscii(config.request_id.header);
    const std::string correlation_id = toLowerAscii(config.correlation_id.header);
    const std::string user_id = toLowerAscii(config.user_id.header);
    FUZZ_CHECK(h.count(request_id) == 1);
    FUZZ_CHECK(h.count(correlation_id) == 1);
    FUZZ_CHECK(h.count(user_id) <= 1);
    FUZZ_CHECK(h.find(request_id)->value == ctx_.request_id);
    FUZZ_CHECK(h.find(correlation_id)->value == ctx_.correlation_id);
    FUZZ_CHECK(h.count("x-forwarded-for") == 1);
    FUZZ_CHECK(h.count("x-forwarded-proto") == 1);
    if (config.trace_context) {
      FUZZ_CHECK(h.count("traceparent") == 1);
      FUZZ_CHECK(h.count("tracestate") <= 1);
      const auto parent = parseTraceparent(h.find("traceparent")->value);
      FUZZ_CHECK(parent && parent->trace_id == ctx_.trace_id && parent->parent_id == ctx_.span_id);
      if (const HeaderField* state = h.find("tracestate")) {
        std::string shortened;
        FUZZ_CHECK(state->value.size() <= kMaxTracestateSize);
        FUZZ_CHECK(checkTracestate(state->value, &shortened) && shortened.empty());
      }
    }

    const std::string_view context_names[] = {request_id, correlation_id, user_id,
                                              "x-forwarded-for", "x-forwarded-proto"};
    for (const HeaderField& f : h.fields()) {
      if (f.removed) continue;
      FUZZ_CHECK(!isHopByHopHeader(f.name));
      FUZZ_CHECK(!equalsIgnoreCase(f.name, "host") && !equalsIgnoreCase(f.name, "expect"));
      FUZZ_CHECK(!equalsIgnoreCase(f.name, "content-length"));
      FUZZ_CHECK(options_.deadline_header.empty() ||
                 (!equalsIgnoreCase(f.name, options_.deadline_header) &&
                  !isUnderscoreLookalike(f.name, options_.deadline_header)));
      for (std::string_view name : context_names)
        FUZZ_CHECK(!isUnderscoreLookalike(f.name, name));
    }

    // Ids: believed only from a trusted peer and only when they match the pattern.
    const Setup& s = setup();
    for (const std::string* id : {&ctx_.request_id, &ctx_.correlation_id}) {
      FUZZ_CHECK(isUuid(*id) || (options_.trusted && s.id_patterns[options_.filter].matches(*id)));
    }
    if (options_.certificate_user) {
      FUZZ_CHECK(ctx_.user_id.value_or("") ==
                 (*options_.certificate_user == kCertificateUser ? kCertificateUser : ""));
    } else if (!options_.trusted) {
      FUZZ_CHECK(!ctx_.user_id && h.count(user_id) == 0);
    }
    if (ctx_.user_id) {
      FUZZ_CHECK(s.user_patterns[options_.filter].matches(*ctx_.user_id));
      FUZZ_CHECK(h.find(user_id)->value == *ctx_.user_id);
    }

    const std::string_view forwarded_for = h.find("x-forwarded-for")->value;
    const std::string_view forwarded_proto = h.find("x-forwarded-proto")->value;
    FUZZ_CHECK(forwarded_proto == "http" || forwarded_proto == "https");
    if (!options_.trusted) {
      FUZZ_CHECK(forwarded_for == "192.0.2.7");
      FUZZ_CHECK(forwarded_proto == (options_.tls ? "https" : "http"));
    } else {
      FUZZ_CHECK(forwarded_for.ends_with("192.0.2.7"));
    }

    FUZZ_CHECK(budget > Duration::zero() && budget <= kUpstreamBudget);
    FUZZ_CHECK(!head.authority.empty() && isValidAuthority(head.authority));
    FUZZ_CHECK(head.target == "*" || head.target.starts_with("/"));
  }

  // The upstream must read exactly the one request the filters decided.
  void readBack() {
    ReadBack back(Http1Parser::Kind::kRequest);
    const Http1Parser::Result r = back.parser().execute(out_.data(), 0, out_.size());
    const ParsedMessage& m = back.message;
    const bool same = r.status == Http1Parser::Status::kPaused && r.consumed == out_.size() &&
                      m.complete && m.method == expected_.method && m.target == expected_.target &&
                      m.host == expected_.host && m.headers == expected_.headers &&
                      m.chunked == expected_.chunked && m.body == expected_.body &&
                      m.trailers == expected_.trailers;
    if (!same) {
      std::fprintf(stderr, "sent upstream:\n%s\nread back: status %d, %zu of %zu bytes, %s\n",
                   escaped(out_.view()).c_str(), static_cast<int>(r.status), r.consumed,
                   out_.size(), back.parser().errorReason().c_str());
      std::fprintf(stderr, "expected headers:\n%sread back:\n%s",
                   describeFields(expected_.headers).c_str(), describeFields(m.headers).c_str());
    }
    FUZZ_CHECK(same);
  }

  const Options& options_;
  RequestContext ctx_;
  UpstreamRequest request_;
  Buffer out_;
  ParsedMessage expected_;
  bool active_ = false;
  bool trailers_sent_ = false;
};

struct Message {
  std::string head;  // what the parser reported
  std::string body;
  std::string trailers;
  bool refused = false;  // makeRequestHead refused the target
  bool complete = false;
  bool operator==(const Message&) const = default;
};

struct Transcript {
  std::vector<Message> messages;
  bool failed = false;
  std::string reason;  // printed, not compared: which check refuses first may depend on the split
  bool operator==(const Transcript& o) const {
    return messages == o.messages && failed == o.failed;
  }
};

// Http1ServerConnection's use of the parser, without sockets: every request is answered at
// once, so the next pipelined one is parsed as soon as the one before completes.
class ServerSide final : public Http1ParserHandler {
 public:
  ServerSide(const Options& options, UpstreamSide* upstream)
      : options_(options), upstream_(upstream) {
    parser_.setMaxHeadBytes(options.max_head_bytes);
    parser_.setMaxFields(options.max_fields);
  }

  // Bytes from the socket. `move` puts them and what is buffered in a new allocation, as a
  // growing buffer may: views kept across calls then point into freed memory.
  void receive(std::string_view bytes, bool move) {
    if (stopped_) return;
    if (move) {
      std::string grown;
      grown.reserve(in_.size() + bytes.size());
      grown.append(in_).append(bytes);
      in_.swap(grown);
    } else {
      in_.append(bytes);
    }
    parse();
  }

  Transcript transcript;

 private:
  void parse() {
    while (!stopped_ && in_.size() > parsed_) {
      const Http1Parser::Result r = parser_.execute(in_.data(), parsed_, in_.size() - parsed_);
      switch (r.status) {
        case Http1Parser::Status::kError:
          FUZZ_CHECK(parser_.error() != ErrorCode::kNone);
          if (!head_done_) {
            std::string method, target;  // what the access log would name
            parser_.requestLine(in_.data(), &method, &target);
          }
          transcript.failed = true;
          transcript.reason = parser_.errorReason();
          stopped_ = true;
          // Whether a head that fails began as a message depends on where the bytes were
          // split (the line checks may refuse it before llhttp has seen it); either way the
          // client gets the same answer.
          if (!head_done_ && !transcript.messages.empty() &&
              transcript.messages.back().head.empty() && !transcript.messages.back().refused) {
            transcript.messages.pop_back();
          }
          return;
        case Http1Parser::Status::kPaused:
          in_.erase(0, parsed_ + r.consumed);
          parsed_ = 0;
          if (!keep_alive_) {
            stopped_ = true;  // the response closes the connection
            return;
          }
          parser_.resume();
          continue;
        case Http1Parser::Status::kOk:
          if (parser_.inHeaders() && parser_.messageStarted()) {
            parsed_ = in_.size();  // the head so far stays in place
          } else {
            in_.clear();
            parsed_ = 0;
          }
          return;
      }
    }
  }

  void onMessageBegin() override {
    transcript.messages.emplace_back();
    head_done_ = false;
  }

  bool onHeadersComplete(Http1Head& h) override {
    FUZZ_CHECK(!transcript.messages.empty());
    Message& m = transcript.messages.back();
    m.head = describeHead(h);
    keep_alive_ = h.keep_alive;
    RequestHead head;
    if (const char* reason = makeRequestHead(h, options_.tls, head)) {
      *h.headers = std::move(head.headers);
      m.refused = true;
      parser_.fail(ErrorCode::kBadRequest, reason);
      return false;
    }
    head_done_ = true;
    head.upgrade = allowedUpgrade(head.headers, h.version_minor,
                                  h.chunked || h.content_length.value_or(0) > 0, kAllowedUpgrades);
    if (upstream_) upstream_->onHead(head);
    *h.headers = std::move(head.headers);
    return true;
  }

  void onBody(std::string_view data) override {
    FUZZ_CHECK(head_done_ && !data.empty());
    transcript.messages.back().body.append(data);
    if (upstream_) upstream_->onBody(data);
  }

  void onTrailers(HeaderList& trailers) override {
    FUZZ_CHECK(head_done_);
    transcript.messages.back().trailers = describeFields(kept(trailers));
    if (upstream_) upstream_->onTrailers(trailers);
  }

  bool onMessageComplete() override {
    FUZZ_CHECK(head_done_);
    transcript.messages.back().complete = true;
    if (upstream_) upstream_->onComplete();
    return true;  // pause: the next pipelined request waits for this one's response
  }

  const Options& options_;
  UpstreamSide* upstream_;
  Http1Parser parser_{Http1Parser::Kind::kRequest, *this};
  std::string in_;
  size_t parsed_ = 0;
  bool head_done_ = false;
  bool keep_alive_ = true;
  bool stopped_ = false;
};

void printTranscript(const char* title, const Transcript& t) {
  std::fprintf(stderr, "%s: %zu messages%s%s\n", title, t.messages.size(),
               t.failed ? ", then an error: " : "", t.reason.c_str());
  for (const Message& m : t.messages) {
    std::fprintf(stderr, "  head: %s\n  body: %zu bytes%s%s\n  trailers: %s\n",
                 escaped(m.head).c_str(), m.body.size(), m.refused ? ", refused" : "",
                 m.complete ? ", complete" : "", escaped(m.trailers).c_str());
  }
}

}  // namespace
}  // namespace viscount::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace viscount::fuzz;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Choices choices(data, size);
  const Options options = choose(choices);

  // All at once, with the upstream side checked.
  UpstreamSide upstream(options);
  ServerSide whole(options, &upstream);
  whole.receive(bytes, false);

  // In pieces of 1 to 16 bytes (sometimes more), each into a new buffer.
  ServerSide pieces(options, nullptr);
  for (size_t at = 0; at < bytes.size();) {
    const size_t n = choices.oneIn(8) ? 1 + choices.below(512) : 1 + choices.below(16);
    pieces.receive(bytes.substr(at, n), true);
    at += n;
  }

  if (!(whole.transcript == pieces.transcript)) {
    printTranscript("all at once", whole.transcript);
    printTranscript("in pieces", pieces.transcript);
  }
  FUZZ_CHECK(whole.transcript == pieces.transcript);
  return 0;
}
