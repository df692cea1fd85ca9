#pragma once

// Request, correlation and trace ids. One generator per worker thread: it owns a buffer of
// kernel randomness and hands it out in slices, so an id costs a few nanoseconds and no syscall.
// Not thread-safe and deliberately neither copyable nor movable: two generators holding the
// same buffer would hand out the same ids.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"

namespace viscount {

class IdGenerator {
 public:
  static constexpr size_t kUuidSize = 36;
  static constexpr size_t kTraceIdSize = 32;
  static constexpr size_t kSpanIdSize = 16;

  IdGenerator() = default;
  IdGenerator(const IdGenerator&) = delete;
  IdGenerator& operator=(const IdGenerator&) = delete;

  // RFC 9562 version 4: 122 random bits, 8-4-4-4-12 lowercase hex.
  void uuid4(char out[kUuidSize]);
  // RFC 9562 version 7: unix milliseconds first, so ids sort by creation time. Within one
  // millisecond a 12-bit counter keeps the ids of this generator strictly increasing.
  void uuid7(char out[kUuidSize]);
  // uuid7 for a given clock reading; lets tests drive the clock.
  void uuid7At(uint64_t unix_ms, char out[kUuidSize]);

  void newId(IdFormat format, char out[kUuidSize]);
  std::string newId(IdFormat format);

  // W3C trace context ids: lowercase hex, never all zero (an all-zero id is invalid on the wire).
  void traceId(char out[kTraceIdSize]);
  void spanId(char out[kSpanIdSize]);

 private:
  static constexpr size_t kPoolSize = 4096;

  // The next `n` unused random bytes (n <= kPoolSize); refills the pool when it runs short.
  const uint8_t* take(size_t n);
  void refill();
  void randomNonZeroHex(size_t bytes, char* out);

  std::array<uint8_t, kPoolSize> pool_;
  size_t used_ = kPoolSize;  // empty until the first id: constructing one costs nothing

  uint64_t uuid7_last_ms_ = 0;
  uint32_t uuid7_counter_ = 0;
};

}  // namespace viscount
