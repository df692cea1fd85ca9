// Fuzzes what an upstream's bytes reach. The input is what an upstream connection sends back for
// one request. Http1Parser runs in response mode as Http1ClientCodec runs it (1xx responses
// before the final one, the head buffered until complete, a body delimited by the close when it
// has no framing, trailing bytes after the response); each final head goes through the response
// phase's filters (sanitizeResponseHeaders, then the context ids echoed), and is encoded for the
// client with framing rebuilt, as Http1ServerConnection does.
//
// Checked beyond the sanitizers:
// - the same bytes split into other pieces give the same responses, bodies, trailers and outcome;
// - the client gets exactly one request id and correlation id and no hop-by-hop header;
// - what goes to the client parses back into exactly the response the filters decided.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filters/context_filter.h"
#include "filters/header_sanitizer.h"
#include "filters/id_generator.h"
#include "proxy/http1/http1_client.h"
#include "proxy/http1/http1_encoder.h"
#include "proxy/http1/http1_parser.h"
#include "proxy/net/buffer.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/http1_messages.h"

namespace viscount::fuzz {
namespace {

struct Setup {
  Setup() {
    std::string error;
    filter = ContextFilter::create(ContextConfig{}, &error);
    FUZZ_CHECK(filter != nullptr);
  }
  std::unique_ptr<ContextFilter> filter;
  IdGenerator ids;
};

Setup& setup() {
  static Setup* s = new Setup();  // never destroyed: no teardown order to think about
  return *s;
}

struct Options {
  bool head_request = false;  // the request was HEAD
  uint64_t max_head_bytes = kMaxResponseHeadBytes;
};

// The client side of the response: the response phase's filters, the checks on their result,
// and the bytes Http1ServerConnection would send, read back at the end.
class ClientSide {
 public:
  explicit ClientSide(const Options& options) : options_(options) {
    setup().filter->ensureIds(ctx_, setup().ids);
  }

  void onInformational(ResponseHead& head) {
    if (head.status == 100) return;  // the proxy answered Expect: 100-continue itself
    sanitizeResponseHeaders(head);
    checkNoHopByHop(head.headers);
    Buffer out;
    encodeInformational(out, head.status, &head.headers);
  }

  void onHead(ResponseHead& head) {
    sanitizeResponseHeaders(head);
    setup().filter->onResponseHeaders(head, ctx_);
    checkNoHopByHop(head.headers);
    FUZZ_CHECK(head.headers.count("x-request-id") == 1);
    FUZZ_CHECK(head.headers.count("x-correlation-id") == 1);
    FUZZ_CHECK(head.headers.find("x-request-id")->value == ctx_.request_id);

    // Http1ServerConnection::sendResponseHead's framing, for an HTTP/1.1 client.
    const bool bodiless = head.status == 204 || head.status == 304 || head.status < 200;
    uint64_t length = 0;
    if (options_.head_request) {
      framing_ = head.content_length ? BodyFraming::kContentLength : BodyFraming::kNone;
      length = head.content_length.value_or(0);
    } else if (bodiless) {
      framing_ = BodyFraming::kNone;
    } else if (head.content_length) {
      framing_ = BodyFraming::kContentLength;
      length = *head.content_length;
    } else {
      framing_ = BodyFraming::kChunked;
    }
    encodeResponseHead(out_, head.status, head.headers, framing_, length, false, false);
    if (options_.head_request || bodiless) framing_ = BodyFraming::kNone;

    expected_.status = head.status;
    expected_.headers = kept(head.headers);
    active_ = true;
  }

  void onBody(std::string_view data) {
    if (!active_) return;
    switch (framing_) {
      case BodyFraming::kChunked:
        encodeChunk(out_, data);
        expected_.body.append(data);
        break;
      case BodyFraming::kContentLength:
      case BodyFraming::kUntilClose:
        out_.append(data);
        expected_.body.append(data);
        break;
      case BodyFraming::kNone:
        break;
    }
  }

  void onTrailers(HeaderList& trailers) {
    if (!active_) return;
    sanitizeTrailers(trailers);
    checkNoHopByHop(trailers);
    if (framing_ == BodyFraming::kChunked) {
      expected_.trailers = kept(trailers);
      encodeLastChunk(out_, &trailers);
      trailers_sent_ = true;
    }
  }

  void onEnd() {
    if (!active_) return;
    active_ = false;
    if (framing_ == BodyFraming::kChunked && !trailers_sent_) encodeLastChunk(out_, nullptr);
    readBack();
  }

 private:
  static void checkNoHopByHop(const HeaderList& headers) {
    for (const HeaderField& f : headers.fields()) {
      FUZZ_CHECK(f.removed || !isHopByHopHeader(f.name));
      FUZZ_CHECK(f.removed || !equalsIgnoreCase(f.name, "content-length"));
    }
  }

  void readBack() {
    ReadBack back(Http1Parser::Kind::kResponse);
    back.parser().setResponseToHead(options_.head_request);
    const Http1Parser::Result r = back.parser().execute(out_.data(), 0, out_.size());
    const ParsedMessage& m = back.message;
    const bool same = r.status == Http1Parser::Status::kPaused && r.consumed == out_.size() &&
                      m.complete && m.status == expected_.status &&
                      m.headers == expected_.headers && m.body == expected_.body &&
                      m.trailers == expected_.trailers;
    if (!same) {
      std::fprintf(stderr, "sent to the client:\n%s\nread back: status %d, %zu of %zu bytes, %s\n",
                   escaped(out_.view()).c_str(), static_cast<int>(r.status), r.consumed,
                   out_.size(), back.parser().errorReason().c_str());
      std::fprintf(stderr, "expected headers:\n%sread back:\n%s",
                   describeFields(expected_.headers).c_str(), describeFields(m.headers).c_str());
    }
    FUZZ_CHECK(same);
  }

  const Options& options_;
  RequestContext ctx_;
  Buffer out_;
  BodyFraming framing_ = BodyFraming::kNone;
  ParsedMessage expected_;
  bool active_ = false;
  bool trailers_sent_ = false;
};

struct Message {
  std::string head;
  std::string body;
  std::string trailers;
  bool complete = false;
  bool operator==(const Message&) const = default;
};

struct Transcript {
  std::vector<Message> messages;
  enum class End { kOpen, kComplete, kFailed } end = End::kOpen;
  bool operator==(const Transcript&) const = default;
};

// Http1ClientCodec's use of the parser, without sockets.
class UpstreamSide final : public Http1ParserHandler {
 public:
  UpstreamSide(const Options& options, ClientSide* client) : client_(client) {
    parser_.setMaxHeadBytes(options.max_head_bytes);
    parser_.setResponseToHead(options.head_request);
  }

  void receive(std::string_view bytes, bool move) {
    if (transcript.end != Transcript::End::kOpen) return;
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

  // The upstream closed: a body without framing ends here, anything else was cut short.
  void peerClosed() {
    if (transcript.end != Transcript::End::kOpen) return;
    if (headers_delivered_ && !parser_.inHeaders() && parser_.finish() && response_done_) {
      end(Transcript::End::kComplete);
      return;
    }
    end(Transcript::End::kFailed);
  }

  Transcript transcript;

 private:
  void parse() {
    const Http1Parser::Result r = parser_.execute(in_.data(), parsed_, in_.size() - parsed_);
    switch (r.status) {
      case Http1Parser::Status::kError:
        FUZZ_CHECK(parser_.error() != ErrorCode::kNone);
        end(Transcript::End::kFailed);
        return;
      case Http1Parser::Status::kPaused:
        FUZZ_CHECK(parsed_ + r.consumed <= in_.size());
        in_.clear();
        parsed_ = 0;
        end(Transcript::End::kComplete);
        return;
      case Http1Parser::Status::kOk:
        if (parser_.inHeaders()) {
          parsed_ = in_.size();  // head bytes stay until the head is complete
        } else {
          in_.clear();
          parsed_ = 0;
        }
        return;
    }
  }

  void end(Transcript::End how) {
    transcript.end = how;
    if (how == Transcript::End::kComplete && client_) client_->onEnd();
  }

  void onMessageBegin() override { transcript.messages.emplace_back(); }

  bool onHeadersComplete(Http1Head& h) override {
    FUZZ_CHECK(!transcript.messages.empty());
    transcript.messages.back().head = describeHead(h);
    ResponseHead response;
    response.headers = std::move(*h.headers);
    response.status = h.status;
    response.content_length = h.content_length;
    response.chunked = h.chunked;
    response.keep_alive = h.keep_alive;
    informational_ = h.status < 200;
    if (client_) {
      if (informational_) {
        client_->onInformational(response);
      } else {
        client_->onHead(response);
      }
    }
    headers_delivered_ = headers_delivered_ || !informational_;
    *h.headers = std::move(response.headers);
    return true;
  }

  void onBody(std::string_view data) override {
    transcript.messages.back().body.append(data);
    if (client_ && !data.empty()) client_->onBody(data);
  }

  void onTrailers(HeaderList& trailers) override {
    transcript.messages.back().trailers = describeFields(kept(trailers));
    if (client_ && !informational_) client_->onTrailers(trailers);
  }

  bool onMessageComplete() override {
    transcript.messages.back().complete = true;
    if (informational_) {
      informational_ = false;
      return false;  // the final response follows
    }
    response_done_ = true;
    return true;
  }

  ClientSide* client_;
  Http1Parser parser_{Http1Parser::Kind::kResponse, *this};
  std::string in_;
  size_t parsed_ = 0;
  bool informational_ = false;
  bool headers_delivered_ = false;
  bool response_done_ = false;
};

void printTranscript(const char* title, const Transcript& t) {
  static constexpr const char* kEnds[] = {"open", "complete", "failed"};
  std::fprintf(stderr, "%s: %zu messages, %s\n", title, t.messages.size(),
               kEnds[static_cast<int>(t.end)]);
  for (const Message& m : t.messages) {
    std::fprintf(stderr, "  head: %s\n  body: %zu bytes%s\n  trailers: %s\n",
                 escaped(m.head).c_str(), m.body.size(), m.complete ? ", complete" : "",
                 escaped(m.trailers).c_str());
  }
}

}  // namespace
}  // namespace viscount::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace viscount::fuzz;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Choices choices(data, size);
  Options options;
  options.head_request = choices.oneIn(8);
  // Sometimes a limit that inputs this size reach, so that where a head is cut off is fuzzed too.
  if (choices.oneIn(4)) options.max_head_bytes = 32 + choices.below(1024);

  // All at once, with the client side checked; then the upstream closes.
  ClientSide client(options);
  UpstreamSide whole(options, &client);
  whole.receive(bytes, false);
  whole.peerClosed();

  // In pieces of 1 to 16 bytes (sometimes more), each into a new buffer.
  UpstreamSide pieces(options, nullptr);
  for (size_t at = 0; at < bytes.size();) {
    const size_t n = choices.oneIn(8) ? 1 + choices.below(512) : 1 + choices.below(16);
    pieces.receive(bytes.substr(at, n), true);
    at += n;
  }
  pieces.peerClosed();

  if (!(whole.transcript == pieces.transcript)) {
    printTranscript("all at once", whole.transcript);
    printTranscript("in pieces", pieces.transcript);
  }
  FUZZ_CHECK(whole.transcript == pieces.transcript);
  return 0;
}
