#pragma once

// HTTP/1.x message parsing: llhttp (strict build, no lenient flags) plus the checks llhttp 8.1
// does not make, which matter for request smuggling between us and the upstream: obs-fold,
// Transfer-Encoding other than exactly "chunked", HTTP/1.0 with Transfer-Encoding, versions other
// than 1.0/1.1, missing or repeated Host, CONNECT, lines without a field name, and limits on the
// header section (bytes and fields; 414 when the request line alone is too long) and trailers.
//
// Zero copy: header names and values are kept as offsets into the caller's input buffer, which
// must not consume bytes of the current message before onHeadersComplete (it may grow or compact;
// offsets are relative to its data()). Trailers are rare and copied.

#include <llhttp.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/errors.h"
#include "proxy/http/http_message.h"

namespace viscount {

// What the parser found in a message head; views are valid during onHeadersComplete only.
struct Http1Head {
  // requests
  std::string_view method;
  std::string_view target;
  std::string_view host;  // the single Host header value (may be empty)
  bool expect_continue = false;
  // responses
  int status = 0;
  // both
  int version_minor = 1;
  HeaderList* headers = nullptr;  // every header except Host, in order, content-length and
                                  // transfer-encoding already marked removed
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;
};

class Http1ParserHandler {
 public:
  virtual ~Http1ParserHandler() = default;
  virtual void onMessageBegin() {}
  // Return false to stop with the error already set via Http1Parser::fail().
  virtual bool onHeadersComplete(Http1Head& head) = 0;
  virtual void onBody(std::string_view data) = 0;
  // Just before onMessageComplete; the list stays valid until that returns.
  virtual void onTrailers(HeaderList& trailers) { (void)trailers; }
  // Return true to pause after this message (the next one stays unparsed in the buffer).
  virtual bool onMessageComplete() = 0;
};

class Http1Parser {
 public:
  enum class Kind { kRequest, kResponse };
  enum class Status { kOk, kPaused, kError };
  struct Result {
    Status status;
    size_t consumed;  // bytes of the input used (all of it unless paused or failed)
  };

  Http1Parser(Kind kind, Http1ParserHandler& handler);
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  // Also bounds the trailer section of a chunked body.
  void setMaxHeadBytes(uint64_t n) { max_head_bytes_ = n; }
  // Header fields in a head, and trailer fields after a body.
  void setMaxFields(size_t n) { max_fields_ = n; }
  // Responses only: the request was HEAD, so the response has no body whatever it says.
  void setResponseToHead(bool head) { response_to_head_ = head; }
  // Responses only: the request asked for an upgrade, so a 101 may answer it (any other 101 is
  // a protocol error). The 101 completes the message: what follows is not HTTP.
  void setUpgradeExpected(bool expected) { upgrade_expected_ = expected; }

  // Parses `len` bytes at `base + offset`. `base` is the start of the current message's bytes in
  // the caller's buffer (the same message may be fed across several calls with a moved base).
  Result execute(const char* base, size_t offset, size_t len);
  // The peer closed: completes a close-delimited response body. Returns false if the message
  // was cut short.
  bool finish();
  // Continue after a pause.
  void resume();
  // Prepare for a new message on the same connection.
  void reset();
  // Gives back the memory of header lists that grew beyond what a usual head needs (a parser
  // kept for reuse then stays small; a usual one keeps its capacity and allocates nothing).
  void trim();

  bool inHeaders() const { return in_headers_; }
  bool messageStarted() const { return started_; }
  // Bytes of the current head parsed so far (for the 431 check and the access log).
  uint64_t headBytes() const { return head_bytes_; }

  void fail(ErrorCode code, std::string reason) {
    error_ = code;
    reason_ = std::move(reason);
  }
  ErrorCode error() const { return error_; }
  const std::string& errorReason() const { return reason_; }

  // For a request rejected before its head completed: the method and target parsed so far
  // (empty when the request line itself was bad). `base` as given to execute().
  void requestLine(const char* base, std::string* method, std::string* target) const;

 private:
  struct Span {
    uint32_t off = 0;
    uint32_t len = 0;
  };
  struct FieldSpan {
    Span name;
    Span value;
    bool value_started = false;
  };

  static int onMessageBeginCb(llhttp_t* p);
  static int onUrlCb(llhttp_t* p, const char* at, size_t len);
  static int onHeaderFieldCb(llhttp_t* p, const char* at, size_t len);
  static int onHeaderValueCb(llhttp_t* p, const char* at, size_t len);
  static int onHeaderValueCompleteCb(llhttp_t* p);
  static int onHeadersCompleteCb(llhttp_t* p);
  static int onBodyCb(llhttp_t* p, const char* at, size_t len);
  static int onMessageCompleteCb(llhttp_t* p);
  static const llhttp_settings_t* settings();

  int headersComplete();
  void failNameless();
  int failTooMany(std::string_view what);
  int countTrailerBytes(size_t len);
  void failOversizedHead();
  // Where the head ends: just past the empty line after `from` (the end of its last span).
  size_t endOfHead(size_t from) const;
  // Request heads only: every line ends in CRLF (no bare CR or LF) and no header line starts
  // with whitespace (obs-fold), checked on the raw bytes because llhttp 8.1 lets some through.
  // Scans the new bytes [begin, end) up to the empty line that ends the head. Its state holds
  // no position (a CR that ends the bytes is remembered as pending), because the caller drops
  // the empty lines before a request: they belong to no message.
  bool scanHeadLines(const char* base, size_t begin, size_t end);
  // A CRLF ended a line; true when it was the empty line that ends the head.
  bool endScannedLine();
  void resetScan() {
    scan_line_len_ = 0;
    scan_lines_ = 0;
    scan_done_ = false;
    scan_cr_pending_ = false;
  }
  enum class MethodVerdict { kNeedMore, kToken, kGarbage };
  static MethodVerdict judgeUnknownMethod(const char* base, size_t end);
  void failUnknownMethod(MethodVerdict verdict);
  bool checkRequestHead(Http1Head& head);
  bool checkResponseHead(Http1Head& head);
  std::string_view view(Span s) const { return {base_ + s.off, s.len}; }
  void extend(Span& s, const char* at, size_t len);
  static constexpr size_t kKeptFields = 32;  // what trim() leaves a parser

  llhttp_t parser_;
  Kind kind_;
  Http1ParserHandler& handler_;
  uint64_t max_head_bytes_ = 64 * 1024;
  size_t max_fields_ = SIZE_MAX;
  bool response_to_head_ = false;
  bool upgrade_expected_ = false;

  const char* base_ = nullptr;  // valid during execute()
  size_t base_len_ = 0;         // bytes at base_: the input's end
  bool started_ = false;
  bool in_headers_ = true;
  bool in_trailers_ = false;
  bool field_done_ = false;
  // Where the current message begins in `base`: after the empty lines allowed before it, which
  // the caller may or may not have kept (they count towards no limit).
  size_t message_start_ = 0;
  bool pause_wanted_ = false;  // what the handler's onMessageComplete answered
  uint64_t head_bytes_ = 0;
  size_t scan_line_len_ = 0;
  size_t scan_lines_ = 0;  // non-empty lines seen (the request line is the first)
  bool scan_done_ = false;
  bool scan_cr_pending_ = false;  // the bytes so far ended in a CR; its LF must come next
  bool method_pending_ = false;   // an unknown method: waiting for the byte after it
  Span url_;
  std::vector<FieldSpan> fields_;
  std::vector<std::pair<std::string, std::string>> trailer_text_;
  uint64_t trailer_bytes_ = 0;
  HeaderList headers_;

  ErrorCode error_ = ErrorCode::kNone;
  std::string reason_;
};

}  // namespace viscount
