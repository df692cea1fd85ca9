#include "proxy/http1/http1_parser.h"
#include "proxy/http/ascii.h"
#include "proxy/http/header_tokens.h"

#include <cstring>

namespace viscount {
namespace {

Http1Parser* self(llhttp_t* p) {
  return static_cast<Http1Parser*>(p->data);
}

}  // namespace

const llhttp_settings_t* Http1Parser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t v;
    llhttp_settings_init(&v);
    v.on_message_begin = &Http1Parser::onMessageBeginCb;
    v.on_url = &Http1Parser::onUrlCb;
    v.on_header_field = &Http1Parser::onHeaderFieldCb;
    v.on_header_value = &Http1Parser::onHeaderValueCb;
    v.on_header_value_complete = &Http1Parser::onHeaderValueCompleteCb;
    v.on_headers_complete = &Http1Parser::onHeadersCompleteCb;
    v.on_body = &Http1Parser::onBodyCb;
    v.on_message_complete = &Http1Parser::onMessageCompleteCb;
    return v;
  }();
  return &s;
}

Http1Parser::Http1Parser(Kind kind, Http1ParserHandler& handler) : kind_(kind), handler_(handler) {
  llhttp_init(&parser_, kind == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, settings());
  parser_.data = this;
}

void Http1Parser::reset() {
  llhttp_reset(&parser_);
  parser_.data = this;
  started_ = false;
  in_headers_ = true;
  in_trailers_ = false;
  field_done_ = false;
  message_start_ = 0;
  pause_wanted_ = false;
  head_bytes_ = 0;
  url_ = {};
  fields_.clear();
  trailer_text_.clear();
  trailer_bytes_ = 0;
  headers_.clear();
  response_to_head_ = false;
  upgrade_expected_ = false;
  error_ = ErrorCode::kNone;
  reason_.clear();
  method_pending_ = false;
  resetScan();
}

void Http1Parser::trim() {
  if (fields_.capacity() > kKeptFields) std::vector<FieldSpan>().swap(fields_);
  if (headers_.fields().capacity() > kKeptFields)
    std::vector<HeaderField>().swap(headers_.fields());
  if (trailer_text_.capacity() > 0) decltype(trailer_text_)().swap(trailer_text_);
  if (reason_.capacity() > std::string().capacity()) std::string().swap(reason_);
}

void Http1Parser::resume() {
  llhttp_resume(&parser_);
}

void Http1Parser::requestLine(const char* base, std::string* method, std::string* target) const {
  // The target span only exists once the method was accepted, so together they are trustworthy.
  if (kind_ != Kind::kRequest || url_.len == 0 || !base) return;
  method->assign(llhttp_method_name(static_cast<llhttp_method_t>(parser_.method)));
  target->assign(base + url_.off, url_.len);
}

bool Http1Parser::endScannedLine() {
  if (scan_line_len_ == 0 && scan_lines_ > 0) {
    scan_done_ = true;  // the empty line: end of the head
    return true;
  }
  if (scan_line_len_ > 0) ++scan_lines_;  // empty lines before the request line are allowed
  scan_line_len_ = 0;
  return false;
}

bool Http1Parser::scanHeadLines(const char* base, size_t begin, size_t end) {
  size_t i = begin;
  if (scan_cr_pending_ && i < end) {
    if (base[i] != '\n') return false;
    scan_cr_pending_ = false;
    ++i;
    if (endScannedLine()) return true;
  }
  while (i < end) {
    const char c = base[i];
    if (c == '\r') {
      if (i + 1 >= end) {
        scan_cr_pending_ = true;  // judged when the next byte arrives
        return true;
      }
      if (base[i + 1] != '\n') return false;
      i += 2;
      if (endScannedLine()) return true;
      continue;
    }
    if (c == '\n') return false;
    if (scan_line_len_ == 0 && scan_lines_ > 0 && (c == ' ' || c == '\t')) return false;
    ++scan_line_len_;
    ++i;
  }
  return true;
}

Http1Parser::MethodVerdict Http1Parser::judgeUnknownMethod(const char* base, size_t end) {
  constexpr size_t kLongestMethod = 32;
  // The message's bytes may begin with the empty lines allowed before a request line.
  size_t start = 0;
  while (start < end && (base[start] == '\r' || base[start] == '\n'))
    ++start;
  const char* method = base + start;
  const size_t available = end - start;
  size_t n = 0;
  while (n < available && n < kLongestMethod && isTokenChar(method[n]))
    ++n;
  if (n == available && n < kLongestMethod) return MethodVerdict::kNeedMore;
  return n > 0 && n < available && method[n] == ' ' ? MethodVerdict::kToken
                                                    : MethodVerdict::kGarbage;
}

void Http1Parser::failUnknownMethod(MethodVerdict verdict) {
  if (verdict == MethodVerdict::kToken) {
    fail(ErrorCode::kNotImplemented, "method not implemented");
  } else {
    fail(ErrorCode::kBadRequest, "invalid method");
  }
}

Http1Parser::Result Http1Parser::execute(const char* base, size_t offset, size_t len) {
  if (method_pending_) {
    const MethodVerdict verdict = judgeUnknownMethod(base, offset + len);
    if (verdict == MethodVerdict::kNeedMore) return {Status::kOk, len};
    failUnknownMethod(verdict);
    return {Status::kError, 0};
  }
  if (kind_ == Kind::kRequest && !scan_done_ && !scanHeadLines(base, offset, offset + len)) {
    fail(ErrorCode::kBadRequest, "bare CR or LF, or a folded header line");
    return {Status::kError, 0};
  }
  base_ = base;
  base_len_ = offset + len;
  const char* start = base + offset;
  size_t done = 0;
  for (;;) {
    if (!started_) {
      // llhttp skips any CR and LF before a message; the message (and its head) begins after.
      size_t skipped = done;
      while (skipped < len && (start[skipped] == '\r' || start[skipped] == '\n'))
        ++skipped;
      message_start_ = offset + skipped;
    }
    llhttp_errno_t err = llhttp_execute(&parser_, start + done, len - done);
    if (err == HPE_OK) {
      done = len;
      break;
    }
    const char* pos = llhttp_get_error_pos(&parser_);
    const size_t used = pos ? static_cast<size_t>(pos - start) : done;
    if (err == HPE_PAUSED) {
      if (!pause_wanted_) {
        // Paused only to learn where the next message (after a 1xx response, or a response to
        // HEAD) begins in these bytes.
        llhttp_resume(&parser_);
        done = used;
        continue;
      }
      base_ = nullptr;
      return {Status::kPaused, used};
    }
    if (err == HPE_PAUSED_UPGRADE && kind_ == Kind::kRequest) {
      // A request becomes a tunnel only once the upstream has answered 101 (the server connection
      // then stops parsing); until then whatever follows is parsed as HTTP.
      llhttp_resume_after_upgrade(&parser_);
      done = used;
      continue;
    }
    if (error_ == ErrorCode::kNone) {
      if (kind_ == Kind::kResponse) {
        fail(ErrorCode::kUpstreamProtocolError, llhttp_get_error_reason(&parser_));
      } else if (err == HPE_INVALID_METHOD) {
        // llhttp knows a fixed set of methods. Whether the unknown one is a well-formed token
        // (501) or garbage (400) shows only once the space after it has arrived.
        const MethodVerdict verdict = judgeUnknownMethod(base, offset + len);
        if (verdict == MethodVerdict::kNeedMore) {
          method_pending_ = true;
          base_ = nullptr;
          return {Status::kOk, len};
        }
        failUnknownMethod(verdict);
      } else {
        fail(ErrorCode::kBadRequest, llhttp_get_error_reason(&parser_));
      }
    }
    base_ = nullptr;
    return {Status::kError, used};
  }
  if (in_headers_ && started_) {
    head_bytes_ = offset + len - message_start_;
    if (head_bytes_ > max_head_bytes_) {
      failOversizedHead();
      base_ = nullptr;
      return {Status::kError, done};
    }
  }
  base_ = nullptr;
  return {Status::kOk, done};
}

bool Http1Parser::finish() {
  // The message-complete callback may pause, which is still a clean end.
  const llhttp_errno_t err = llhttp_finish(&parser_);
  return err == HPE_OK || err == HPE_PAUSED;
}

void Http1Parser::extend(Span& s, const char* at, size_t len) {
  const auto off = static_cast<uint32_t>(at - base_);
  if (s.len == 0) {
    s.off = off;
    s.len = static_cast<uint32_t>(len);
  } else {
    s.len = static_cast<uint32_t>(off + len - s.off);
  }
}

int Http1Parser::onMessageBeginCb(llhttp_t* p) {
  Http1Parser* me = self(p);
  me->started_ = true;
  me->handler_.onMessageBegin();
  return 0;
}

int Http1Parser::onUrlCb(llhttp_t* p, const char* at, size_t len) {
  Http1Parser* me = self(p);
  me->extend(me->url_, at, len);
  return 0;
}

int Http1Parser::onHeaderFieldCb(llhttp_t* p, const char* at, size_t len) {
  Http1Parser* me = self(p);
  if (me->in_trailers_) {
    if (me->field_done_ || me->trailer_text_.empty()) {
      if (me->trailer_text_.size() >= me->max_fields_) return me->failTooMany("trailer fields");
      me->trailer_text_.emplace_back();
    }
    me->trailer_text_.back().first.append(at, len);
    me->field_done_ = false;
    return me->countTrailerBytes(len);
  }
  if (me->field_done_ || me->fields_.empty()) {
    // Every field costs memory and work in each filter whatever its size: a count limit, not
    // only the byte limit (which a head of empty fields would fill with thousands of them).
    if (me->fields_.size() >= me->max_fields_) return me->failTooMany("header fields");
    me->fields_.emplace_back();
  }
  me->field_done_ = false;
  me->extend(me->fields_.back().name, at, len);
  return 0;
}

int Http1Parser::onHeaderValueCb(llhttp_t* p, const char* at, size_t len) {
  Http1Parser* me = self(p);
  if (me->field_done_ || (me->in_trailers_ ? me->trailer_text_.empty() : me->fields_.empty())) {
    // llhttp 8.1 accepts a line with nothing before its colon, and reports only its value: that
    // value would otherwise extend the field before it, line break included.
    me->failNameless();
    return HPE_USER;
  }
  if (me->in_trailers_) {
    me->trailer_text_.back().second.append(at, len);
    return me->countTrailerBytes(len);
  }
  FieldSpan& f = me->fields_.back();
  const bool continues =
      f.value_started && f.value.len > 0 && at == me->base_ + f.value.off + f.value.len;
  if (f.value_started && !continues && at > me->base_ && (at[-1] == '\n' || at[-1] == '\r')) {
    // A second piece of the same value that does not continue the first: llhttp accepted an
    // obsolete line folding (RFC 9112 section 5.2), which we refuse. (An empty value has one
    // empty piece, which llhttp may place on the next line; request heads are also checked
    // for folds byte by byte in scanHeadLines.)
    me->fail(
        me->kind_ == Kind::kRequest ? ErrorCode::kBadRequest : ErrorCode::kUpstreamProtocolError,
        "obsolete line folding");
    return HPE_USER;
  }
  if (f.value_started && f.value.len == 0 && len > 0) {
    f.value.off = static_cast<uint32_t>(at - me->base_);
  }
  f.value_started = true;
  me->extend(f.value, at, len);
  return 0;
}

int Http1Parser::onHeaderValueCompleteCb(llhttp_t* p) {
  Http1Parser* me = self(p);
  // A value with a name of no characters (the name callback may come with an empty span).
  const bool nameless = me->in_trailers_
                            ? !me->trailer_text_.empty() && me->trailer_text_.back().first.empty()
                            : !me->fields_.empty() && me->fields_.back().name.len == 0;
  if (nameless || (me->in_trailers_ ? me->trailer_text_.empty() : me->fields_.empty())) {
    me->failNameless();
    return HPE_USER;
  }
  me->field_done_ = true;
  return 0;
}

int Http1Parser::failTooMany(std::string_view what) {
  fail(kind_ == Kind::kRequest ? ErrorCode::kHeadersTooLarge : ErrorCode::kUpstreamProtocolError,
       "too many " + std::string(what));
  return HPE_USER;
}

int Http1Parser::countTrailerBytes(size_t len) {
  // Trailers are copied until the message ends, and come after the head's deadline and size
  // check: without their own bound a client could send them forever.
  trailer_bytes_ += len;
  if (trailer_bytes_ <= max_head_bytes_) return 0;
  fail(kind_ == Kind::kRequest ? ErrorCode::kHeadersTooLarge : ErrorCode::kUpstreamProtocolError,
       "trailer section too large");
  return HPE_USER;
}

void Http1Parser::failNameless() {
  fail(kind_ == Kind::kRequest ? ErrorCode::kBadRequest : ErrorCode::kUpstreamProtocolError,
       "header line without a field name");
}

int Http1Parser::onHeadersCompleteCb(llhttp_t* p) {
  return self(p)->headersComplete();
}

int Http1Parser::headersComplete() {
  if (kind_ == Kind::kRequest && parser_.upgrade && parser_.method != HTTP_CONNECT) {
    // Whether this request becomes a tunnel is for the upstream's answer to decide (a 101):
    // until then, parse what follows as ordinary HTTP.
    parser_.upgrade = 0;
  }
  Http1Head head;
  headers_.clear();
  head.headers = &headers_;
  head.version_minor = parser_.http_minor;
  // Head size: every byte from the message's first to the end of the empty line, as the
  // unfinished head is counted in execute(), so the limit bites the same wherever the bytes were
  // split. Only line ends follow the last span.
  size_t last = std::max<size_t>(message_start_, url_.off + url_.len);
  for (const auto& f : fields_) {
    last = std::max<size_t>(last, f.name.off + f.name.len);
    // An empty value's span may stand past its line's end.
    if (f.value.len > 0) last = std::max<size_t>(last, f.value.off + f.value.len);
  }
  head_bytes_ = endOfHead(last) - message_start_;
  if (head_bytes_ > max_head_bytes_) {
    failOversizedHead();
    return -1;
  }

  bool ok = kind_ == Kind::kRequest ? checkRequestHead(head) : checkResponseHead(head);
  if (!ok) return -1;
  in_headers_ = false;
  in_trailers_ = true;
  field_done_ = false;
  if (!handler_.onHeadersComplete(head)) return -1;
  // Returning 1 tells llhttp that no body follows; checkResponseHead decided that already.
  return kind_ == Kind::kResponse && (parser_.flags & F_SKIPBODY) != 0 ? 1 : 0;
}

size_t Http1Parser::endOfHead(size_t from) const {
  // The empty line: an LF followed by LF or CRLF (llhttp takes bare LFs in responses).
  for (size_t i = from; i < base_len_; ++i) {
    if (base_[i] != '\n') continue;
    if (i + 1 < base_len_ && base_[i + 1] == '\n') return i + 2;
    if (i + 2 < base_len_ && base_[i + 1] == '\r' && base_[i + 2] == '\n') return i + 3;
  }
  return base_len_;  // not reached: llhttp saw the empty line in these bytes
}

void Http1Parser::failOversizedHead() {
  if (kind_ == Kind::kResponse) {
    fail(ErrorCode::kUpstreamProtocolError, "header section too large");
    return;
  }
  // The request line alone does not fit (it has not even ended, or its target is that long):
  // 414, as nginx answers; otherwise the header fields are to blame: 431.
  constexpr size_t kVersionAndCrlf = sizeof(" HTTP/1.1\r\n") - 1;
  if (scan_lines_ == 0 ||
      url_.off - message_start_ + url_.len + kVersionAndCrlf > max_head_bytes_) {
    fail(ErrorCode::kUriTooLong, "request line too long");
  } else {
    fail(ErrorCode::kHeadersTooLarge, "header section too large");
  }
}

bool Http1Parser::checkRequestHead(Http1Head& head) {
  if (parser_.http_major != 1 || parser_.http_minor > 1) {
    if (parser_.http_major == 0) {
      fail(ErrorCode::kBadRequest, "HTTP/0.9 is not supported");
    } else {
      fail(ErrorCode::kVersionNotSupported, "unsupported HTTP version");
    }
    return false;
  }
  if (parser_.method == HTTP_CONNECT) {
    fail(ErrorCode::kNotImplemented, "CONNECT is not supported");
    return false;
  }
  head.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  head.target = view(url_);
  if (head.target.empty()) {
    fail(ErrorCode::kBadRequest, "empty request target");
    return false;
  }
  const bool asterisk = head.target == "*";
  if (asterisk && parser_.method != HTTP_OPTIONS) {
    fail(ErrorCode::kBadRequest, "asterisk-form target is only valid for OPTIONS");
    return false;
  }

  size_t hosts = 0;
  size_t transfer_encodings = 0;
  for (const auto& f : fields_) {
    std::string_view name = view(f.name);
    std::string_view value = trimOws(view(f.value));
    if (equalsIgnoreCase(name, "host")) {
      ++hosts;
      head.host = value;
      continue;
    }
    headers_.add(name, value);
    if (equalsIgnoreCase(name, "content-length")) {
      headers_.fields().back().removed = true;  // framing is rebuilt from real lengths
    } else if (equalsIgnoreCase(name, "transfer-encoding")) {
      ++transfer_encodings;
      headers_.fields().back().removed = true;
      if (!equalsIgnoreCase(value, "chunked")) {
        fail(ErrorCode::kBadRequest, "Transfer-Encoding other than chunked");
        return false;
      }
    } else if (equalsIgnoreCase(name, "expect")) {
      if (!equalsIgnoreCase(value, "100-continue")) {
        fail(ErrorCode::kExpectationFailed, "unsupported Expect");
        return false;
      }
      head.expect_continue = parser_.http_minor >= 1;
      headers_.fields().back().removed = true;  // we answer 100 Continue ourselves
    }
  }
  if (hosts > 1) {
    fail(ErrorCode::kBadRequest, "more than one Host header");
    return false;
  }
  if (hosts == 0 && parser_.http_minor == 1) {
    fail(ErrorCode::kBadRequest, "HTTP/1.1 request without Host");
    return false;
  }
  if (!isValidAuthority(head.host)) {
    fail(ErrorCode::kBadRequest, "invalid Host");
    return false;
  }
  if (transfer_encodings > 0 && parser_.http_minor == 0) {
    fail(ErrorCode::kBadRequest, "Transfer-Encoding in an HTTP/1.0 request");
    return false;
  }
  if (transfer_encodings > 1) {
    fail(ErrorCode::kBadRequest, "chunked applied more than once");
    return false;
  }
  if ((parser_.flags & F_CHUNKED) != 0) {
    head.chunked = true;
  } else if ((parser_.flags & F_CONTENT_LENGTH) != 0) {
    head.content_length = parser_.content_length;
  } else {
    head.content_length = 0;
  }
  head.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  return true;
}

bool Http1Parser::checkResponseHead(Http1Head& head) {
  if (parser_.http_major != 1 || parser_.http_minor > 1) {
    fail(ErrorCode::kUpstreamProtocolError, "unsupported HTTP version in response");
    return false;
  }
  const int status = parser_.status_code;
  if (status < 100 || status > 599 || (status == 101 && !upgrade_expected_)) {
    fail(ErrorCode::kUpstreamProtocolError, "unexpected response status");
    return false;
  }
  head.status = status;
  size_t transfer_encodings = 0;
  for (const auto& f : fields_) {
    std::string_view name = view(f.name);
    std::string_view value = trimOws(view(f.value));
    headers_.add(name, value);
    if (equalsIgnoreCase(name, "content-length")) {
      headers_.fields().back().removed = true;
    } else if (equalsIgnoreCase(name, "transfer-encoding")) {
      headers_.fields().back().removed = true;
      if (!equalsIgnoreCase(value, "chunked")) {
        fail(ErrorCode::kUpstreamProtocolError, "Transfer-Encoding other than chunked");
        return false;
      }
      // RFC 9112 section 6.1: never applied twice. llhttp 8.1 refuses this in a request only.
      if (++transfer_encodings > 1) {
        fail(ErrorCode::kUpstreamProtocolError, "chunked applied more than once");
        return false;
      }
    }
  }
  const bool no_body = response_to_head_ || status < 200 || status == 204 || status == 304;
  if ((parser_.flags & F_CHUNKED) != 0) {
    head.chunked = !no_body;
  } else if ((parser_.flags & F_CONTENT_LENGTH) != 0) {
    head.content_length = parser_.content_length;
  }
  if (no_body && status != 304 && !response_to_head_) head.content_length = 0;
  // llhttp learns that no body follows only from this callback's return value; tell it now so
  // that a bodiless response without framing headers does not count as read-until-close.
  if (no_body) parser_.flags |= F_SKIPBODY;
  head.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  if (!head.chunked && !head.content_length && !no_body) head.keep_alive = false;  // until close
  return true;
}

int Http1Parser::onBodyCb(llhttp_t* p, const char* at, size_t len) {
  self(p)->handler_.onBody({at, len});
  return 0;
}

int Http1Parser::onMessageCompleteCb(llhttp_t* p) {
  Http1Parser* me = self(p);
  HeaderList trailers;  // valid until onMessageComplete returns
  if (!me->trailer_text_.empty()) {
    for (auto& [name, value] : me->trailer_text_) {
      std::string_view n = trailers.keep(std::move(name));
      std::string_view v = trailers.keep(std::string(trimOws(value)));
      trailers.add(n, v);
    }
    me->trailer_text_.clear();
    me->handler_.onTrailers(trailers);
  }
  me->trailer_bytes_ = 0;
  me->pause_wanted_ = me->handler_.onMessageComplete();
  me->in_headers_ = true;
  me->in_trailers_ = false;
  me->field_done_ = false;
  me->started_ = false;
  me->url_ = {};
  me->fields_.clear();
  me->resetScan();
  // Always paused, so that execute() learns where the next message begins; it goes on at once
  // unless the handler asked for the pause.
  return HPE_PAUSED;
}

}  // namespace viscount
