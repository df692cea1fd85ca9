#pragma once

// A parser handler that copies out everything it is told, one Message per message, for tests
// that compare what Http1Parser reported.

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "proxy/http1/http1_parser.h"

namespace viscount::test {

struct Field {
  std::string name;
  std::string value;
  bool removed = false;
  bool operator==(const Field&) const = default;
};

// Everything the handler saw of one message, copied out of the parser's views.
struct Message {
  bool head_seen = false;
  std::string method;
  std::string target;
  std::string host;
  bool expect_continue = false;
  int status = 0;
  int version_minor = -1;
  std::vector<Field> headers;
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = false;
  std::string body;
  bool trailers_seen = false;
  std::vector<std::pair<std::string, std::string>> trailers;
  bool complete = false;
  bool operator==(const Message&) const = default;
};

class Recorder : public Http1ParserHandler {
 public:
  void onMessageBegin() override { messages.emplace_back(); }

  bool onHeadersComplete(Http1Head& h) override {
    Message& m = current();
    m.head_seen = true;
    m.method = h.method;
    m.target = h.target;
    m.host = h.host;
    m.expect_continue = h.expect_continue;
    m.status = h.status;
    m.version_minor = h.version_minor;
    for (const HeaderField& f : h.headers->fields()) {
      m.headers.push_back({std::string(f.name), std::string(f.value), f.removed});
      if (!inInput(f.name) || !inInput(f.value)) views_outside_input = true;
    }
    if (!h.host.empty() && !inInput(h.host)) views_outside_input = true;
    m.content_length = h.content_length;
    m.chunked = h.chunked;
    m.keep_alive = h.keep_alive;
    if (parser_to_fail) {
      parser_to_fail->fail(ErrorCode::kInternalError, "refused by the handler");
      return false;
    }
    return true;
  }

  void onBody(std::string_view data) override { current().body.append(data); }

  void onTrailers(HeaderList& trailers) override {
    Message& m = current();
    m.trailers_seen = true;
    for (const HeaderField& f : trailers.fields())
      m.trailers.emplace_back(f.name, f.value);
  }

  bool onMessageComplete() override {
    current().complete = true;
    return pause_after_message;
  }

  // The bytes the current execute() call may point into.
  void setInput(const char* begin, size_t size) {
    input_begin_ = begin;
    input_end_ = begin + size;
  }

  std::vector<Message> messages;
  bool pause_after_message = false;
  bool views_outside_input = false;
  Http1Parser* parser_to_fail = nullptr;

 private:
  Message& current() {
    if (messages.empty()) {
      ADD_FAILURE() << "callback before onMessageBegin";
      messages.emplace_back();
    }
    return messages.back();
  }
  bool inInput(std::string_view v) const {
    return v.empty() || (v.data() >= input_begin_ && v.data() + v.size() <= input_end_);
  }

  const char* input_begin_ = nullptr;
  const char* input_end_ = nullptr;
};

inline void PrintTo(const Field& f, std::ostream* os) {
  *os << f.name << ": " << f.value << (f.removed ? " (removed)" : "");
}

inline void PrintTo(const Message& m, std::ostream* os) {
  *os << "{" << m.method << " " << m.target << " status=" << m.status << " host=" << m.host
      << " minor=" << m.version_minor
      << " cl=" << (m.content_length ? std::to_string(*m.content_length) : "none")
      << " chunked=" << m.chunked << " keep_alive=" << m.keep_alive
      << " expect=" << m.expect_continue << " headers=[";
  for (const Field& f : m.headers) {
    PrintTo(f, os);
    *os << "; ";
  }
  *os << "] body=" << m.body.size() << " bytes, trailers=" << m.trailers.size()
      << " complete=" << m.complete << "}";
}

// A request parser and a response parser reporting to one Recorder.
class ParserFixture : public ::testing::Test {
 protected:
  // Feeds `bytes` in one call, as a message starting at its first byte.
  Http1Parser::Result feed(Http1Parser& parser, const std::string& bytes) {
    recorder_.setInput(bytes.data(), bytes.size());
    return parser.execute(bytes.data(), 0, bytes.size());
  }

  Recorder recorder_;
  Http1Parser request_parser_{Http1Parser::Kind::kRequest, recorder_};
  Http1Parser response_parser_{Http1Parser::Kind::kResponse, recorder_};
};

}  // namespace viscount::test
