// Exchange's operator new and delete: every request allocates one Exchange, and a worker frees it
// again a few milliseconds later, so each worker thread keeps the blocks of its finished exchanges
// and hands them to the next ones. The general allocator's fast path (glibc's per-thread cache)
// only takes blocks up to about 1 KiB; an Exchange is larger, and each new field of the request's
// context would otherwise have moved every request onto the allocator's slow path.

#include <cstddef>
#include <new>

#include "proxy/lifecycle/exchange.h"

namespace viscount {
namespace {

// Enough for the requests one worker has in flight in a burst; beyond, blocks go back to the
// allocator so an idle worker does not sit on memory a peak left behind.
constexpr size_t kMaxKept = 256;

struct FreeBlock {
  FreeBlock* next;
};

class BlockCache {
 public:
  ~BlockCache() {
    while (head_ != nullptr) {
      FreeBlock* block = head_;
      head_ = block->next;
      ::operator delete(block);
    }
  }
  void* take() {
    if (head_ == nullptr) return nullptr;
    FreeBlock* block = head_;
    head_ = block->next;
    --count_;
    return block;
  }
  bool keep(void* p) {
    if (count_ == kMaxKept) return false;
    head_ = new (p) FreeBlock{head_};
    ++count_;
    return true;
  }

 private:
  FreeBlock* head_ = nullptr;
  size_t count_ = 0;
};

// Per thread: an Exchange lives and dies on its worker's thread, so no lock is needed; a block
// freed on another thread (a test's) simply joins that thread's cache.
thread_local BlockCache cache;

}  // namespace

// Under AddressSanitizer every Exchange gets fresh memory, so a use after free is still caught.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRecycle = false;
#else
constexpr bool kRecycle = true;
#endif

void* Exchange::operator new(size_t size) {
  static_assert(sizeof(Exchange) >= sizeof(FreeBlock));
  if (kRecycle && size == sizeof(Exchange)) {
    if (void* block = cache.take()) return block;
  }
  return ::operator new(size);
}

void Exchange::operator delete(void* p, size_t size) {
  if (p == nullptr) return;
  if (kRecycle && size == sizeof(Exchange) && cache.keep(p)) return;
  ::operator delete(p);
}

}  // namespace viscount
