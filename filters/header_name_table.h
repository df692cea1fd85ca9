#pragma once

// Small fixed sets of header names (the hop-by-hop set, the configured context headers), looked
// up case-insensitively for every header of every request. Names are bucketed by length, so a
// header that is none of them usually costs a single load and no character comparison.

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "proxy/http/http_message.h"

namespace viscount {

// `lower` must already be lowercase, which halves the work of equalsIgnoreCase.
inline bool equalsLowercase(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (asciiLower(name[i]) != lower[i]) return false;
  }
  return true;
}

// CGI and WSGI servers (and frameworks that read their environ) turn "X-User-Id" and
// "X_User_Id" into the same HTTP_X_USER_ID: a header whose name matches `lower` once '_' is
// read as '-' would be taken upstream for the one the proxy decided on. Only names that contain
// '_' can be such look-alikes.
inline bool isUnderscoreLookalike(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size() || name.find('_') == std::string_view::npos) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i] == '_' ? '-' : asciiLower(name[i]);
    if (c != lower[i]) return false;
  }
  return true;
}

class HeaderNameTable {
 public:
  static constexpr size_t kMaxNames = 16;
  static constexpr int kNotFound = -1;

  constexpr HeaderNameTable() = default;
  // Lowercase names; the table keeps views, so the strings must outlive it.
  constexpr HeaderNameTable(std::initializer_list<std::string_view> lowercase_names) {
    for (auto name : lowercase_names)
      add(name);
  }

  // Returns the index `find` will report for this name.
  constexpr int add(std::string_view lowercase_name) {
    assert(size_ < kMaxNames);
    names_[size_] = lowercase_name;
    by_length_[bucket(lowercase_name.size())] |= static_cast<uint16_t>(1u << size_);
    return static_cast<int>(size_++);
  }

  // Index of the name `name` is an underscore look-alike of, or kNotFound.
  // Every request header goes through this in three filters: the length bucket (a load) rules out
  // most names before the scan for an underscore does.
  int findLookalike(std::string_view name) const {
    unsigned candidates = by_length_[bucket(name.size())];
    if (candidates == 0 || name.find('_') == std::string_view::npos) return kNotFound;
    while (candidates != 0) {
      int i = std::countr_zero(candidates);
      if (isUnderscoreLookalike(name, names_[static_cast<size_t>(i)])) return i;
      candidates &= candidates - 1;
    }
    return kNotFound;
  }

  // Index of `name` in insertion order, or kNotFound.
  int find(std::string_view name) const {
    unsigned candidates = by_length_[bucket(name.size())];
    while (candidates != 0) {
      int i = std::countr_zero(candidates);
      if (equalsLowercase(name, names_[static_cast<size_t>(i)])) return i;
      candidates &= candidates - 1;
    }
    return kNotFound;
  }

 private:
  static constexpr size_t kLongest = 31;  // one shared bucket for this length and above
  static constexpr size_t bucket(size_t length) { return std::min(length, kLongest); }

  std::array<std::string_view, kMaxNames> names_{};
  std::array<uint16_t, kLongest + 1> by_length_{};
  size_t size_ = 0;
};

}  // namespace viscount
