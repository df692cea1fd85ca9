#pragma once

// Builds heads for filter tests. HeaderField names and values are views, so the strings they
// view live here, in a deque (its elements never move), for as long as the test needs them.

#include <deque>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/http/http_message.h"

namespace viscount::test {

using HeaderPairs = std::initializer_list<std::pair<std::string, std::string>>;

class HeaderStorage {
 public:
  HeaderStorage() = default;
  HeaderStorage(const HeaderStorage&) = delete;
  HeaderStorage& operator=(const HeaderStorage&) = delete;

  std::string_view store(std::string s) {
    strings_.push_back(std::move(s));
    return strings_.back();
  }
  void add(HeaderList& list, std::string name, std::string value) {
    std::string_view n = store(std::move(name));
    list.add(n, store(std::move(value)));
  }

 private:
  std::deque<std::string> strings_;
};

struct TestRequest {
  explicit TestRequest(HeaderPairs headers = {}, std::string_view scheme = "http") {
    head.method = "GET";
    head.target = "/";
    head.authority = "app.local";
    head.scheme = scheme;
    for (const auto& [name, value] : headers)
      add(name, value);
  }
  TestRequest& add(std::string name, std::string value) {
    storage.add(head.headers, std::move(name), std::move(value));
    return *this;
  }

  HeaderStorage storage;
  RequestHead head;
};

struct TestResponse {
  explicit TestResponse(HeaderPairs headers = {}) {
    for (const auto& [name, value] : headers)
      storage.add(head.headers, name, value);
  }

  HeaderStorage storage;
  ResponseHead head;
};

// Values of the headers called `name` that are still to be sent, in order.
inline std::vector<std::string> valuesOf(const HeaderList& headers, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& f : headers.fields()) {
    if (!f.removed && equalsIgnoreCase(f.name, name)) out.emplace_back(f.value);
  }
  return out;
}

// Names of every header still to be sent, in order.
inline std::vector<std::string> liveNames(const HeaderList& headers) {
  std::vector<std::string> out;
  for (const auto& f : headers.fields()) {
    if (!f.removed) out.emplace_back(f.name);
  }
  return out;
}

inline bool isLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// 8-4-4-4-12 lowercase hex with the given version nibble and the RFC 9562 variant.
inline bool isUuid(std::string_view s, char version) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !isLowerHex(s.substr(i, 1))) return false;
  }
  return s[14] == version && std::string_view("89ab").find(s[19]) != std::string_view::npos;
}

}  // namespace viscount::test
