#pragma once

// Readable gtest output for the proxy's enums. Every test file that compares these types includes
// it: gtest instantiates one printer per type for the whole binary.

#include <ostream>

#include "proxy/http/errors.h"
#include "proxy/http1/http1_parser.h"

namespace viscount {

inline void PrintTo(ErrorCode code, std::ostream* os) {
  const std::string_view name = errorInfo(code).code;
  *os << (code == ErrorCode::kNone ? std::string_view("none") : name);
}

inline void PrintTo(Http1Parser::Status status, std::ostream* os) {
  switch (status) {
    case Http1Parser::Status::kOk:
      *os << "kOk";
      return;
    case Http1Parser::Status::kPaused:
      *os << "kPaused";
      return;
    case Http1Parser::Status::kError:
      *os << "kError";
      return;
  }
  *os << "?";
}

}  // namespace viscount
