#pragma once

// Byte buffers for socket I/O. A Buffer is one contiguous region [begin, end) inside an
// allocation; it starts empty with no memory, takes a 16 KiB block from its worker's cache when
// first written, and gives the block back when drained, so an idle connection holds no buffer
// memory at all. Offsets relative to data() survive growth and compaction, which is what lets the
// HTTP/1 codec keep header spans as offsets while more bytes arrive.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace viscount {

class BufferCache {
 public:
  static constexpr size_t kBlockSize = 16 * 1024;

  BufferCache() = default;
  BufferCache(const BufferCache&) = delete;
  BufferCache& operator=(const BufferCache&) = delete;
  ~BufferCache();

  char* take();
  void give(char* block);
  size_t cachedBlocks() const { return free_.size(); }

 private:
  static constexpr size_t kMaxCached = 512;  // 8 MiB per worker at most
  std::vector<char*> free_;
};

class Buffer {
 public:
  explicit Buffer(BufferCache* cache = nullptr) : cache_(cache) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept { moveFrom(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      moveFrom(other);
    }
    return *this;
  }
  ~Buffer() { release(); }

  const char* data() const { return buf_ + begin_; }
  char* data() { return buf_ + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return end_ == begin_; }
  size_t capacity() const { return cap_; }
  std::string_view view() const { return {data(), size()}; }

  void consume(size_t n) {
    begin_ += n;
    if (begin_ >= end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }

  // Ensures at least `n` contiguous writable bytes after the readable region; returns them.
  char* reserve(size_t n) {
    if (cap_ - end_ < n) makeRoom(n);
    return buf_ + end_;
  }
  size_t tailroom() const { return cap_ - end_; }
  void commit(size_t n) { end_ += n; }

  void append(const void* p, size_t n) {
    if (n == 0) return;
    std::memcpy(reserve(n), p, n);
    end_ += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  void append(char c) {
    *reserve(1) = c;
    ++end_;
  }

  // Gives the memory back (to the cache for standard blocks) when nothing is buffered.
  void releaseIfEmpty() {
    if (empty()) release();
  }
  void release();

 private:
  void makeRoom(size_t n);
  void moveFrom(Buffer& other) {
    cache_ = other.cache_;
    buf_ = other.buf_;
    begin_ = other.begin_;
    end_ = other.end_;
    cap_ = other.cap_;
    other.buf_ = nullptr;
    other.begin_ = other.end_ = other.cap_ = 0;
  }

  BufferCache* cache_ = nullptr;
  char* buf_ = nullptr;
  size_t begin_ = 0;
  size_t end_ = 0;
  size_t cap_ = 0;
};

}  // namespace viscount
