#include "proxy/net/buffer.h"

#include <cstdlib>
#include <new>

namespace viscount {

BufferCache::~BufferCache() {
  for (char* block : free_)
    std::free(block);
}

char* BufferCache::take() {
  if (!free_.empty()) {
    char* block = free_.back();
    free_.pop_back();
    return block;
  }
  auto* block = static_cast<char*>(std::malloc(kBlockSize));
  if (!block) throw std::bad_alloc();
  return block;
}

void BufferCache::give(char* block) {
  if (free_.size() < kMaxCached) {
    free_.push_back(block);
  } else {
    std::free(block);
  }
}

void Buffer::release() {
  if (buf_) {
    if (cache_ && cap_ == BufferCache::kBlockSize) {
      cache_->give(buf_);
    } else {
      std::free(buf_);
    }
  }
  buf_ = nullptr;
  begin_ = end_ = cap_ = 0;
}

void Buffer::makeRoom(size_t n) {
  const size_t used = end_ - begin_;
  if (buf_ && cap_ - used >= n && begin_ >= used) {
    // Enough space once the consumed prefix is dropped, and the move is cheap relative to it.
    std::memmove(buf_, buf_ + begin_, used);
    begin_ = 0;
    end_ = used;
    return;
  }
  size_t want = used + n;
  char* fresh;
  size_t fresh_cap;
  if (want <= BufferCache::kBlockSize && cache_) {
    fresh = cache_->take();
    fresh_cap = BufferCache::kBlockSize;
  } else {
    fresh_cap = BufferCache::kBlockSize;
    while (fresh_cap < want)
      fresh_cap *= 2;
    fresh = static_cast<char*>(std::malloc(fresh_cap));
    if (!fresh) throw std::bad_alloc();
  }
  if (used) std::memcpy(fresh, buf_ + begin_, used);
  release();
  buf_ = fresh;
  cap_ = fresh_cap;
  begin_ = 0;
  end_ = used;
}

}  // namespace viscount
