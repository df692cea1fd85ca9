#pragma once

// The fields of one received header block (request or response head, 1xx, trailers), copied
// out of nghttp2's buffers as they are decoded: nghttp2 lends each name and value only for the
// length of its callback, and the block is judged once it is complete. All names and values sit
// in one string, so a block costs one allocation however many fields it has, and its size in
// decoded bytes is known at every step (the header limits are counted on it).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace viscount::h2 {

class HeaderArena {
 public:
  struct Field {
    std::string_view name;
    std::string_view value;
  };

  class Iterator {
   public:
    Iterator(const HeaderArena& arena, size_t index) : arena_(&arena), index_(index) {}
    Field operator*() const { return arena_->at(index_); }
    Iterator& operator++() {
      ++index_;
      return *this;
    }
    bool operator==(const Iterator& other) const { return index_ == other.index_; }

   private:
    const HeaderArena* arena_;
    size_t index_;
  };

  void add(std::string_view name, std::string_view value);
  // Forgets the fields; the memory stays for the stream's next block (its trailers).
  void clear();
  // Forgets the fields and gives the memory back: a stream may live long after its head.
  void release();

  // Decoded name and value bytes so far.
  size_t bytes() const { return bytes_.size(); }
  size_t count() const { return spans_.size(); }
  Field at(size_t index) const;
  Iterator begin() const { return Iterator(*this, 0); }
  Iterator end() const { return Iterator(*this, spans_.size()); }

 private:
  // The value follows its name in bytes_.
  struct Span {
    uint32_t offset, name_size, value_size;
  };
  std::string bytes_;
  std::vector<Span> spans_;
};

}  // namespace viscount::h2
