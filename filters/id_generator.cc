#include "filters/id_generator.h"

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>

namespace viscount {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

void writeHex(const uint8_t* bytes, size_t n, char* out) {
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHexDigits[bytes[i] >> 4];
    out[2 * i + 1] = kHexDigits[bytes[i] & 0x0f];
  }
}

// 8-4-4-4-12 groups of the 16 bytes.
void writeUuid(const uint8_t b[16], char* out) {
  writeHex(b, 4, out);
  out[8] = '-';
  writeHex(b + 4, 2, out + 9);
  out[13] = '-';
  writeHex(b + 6, 2, out + 14);
  out[18] = '-';
  writeHex(b + 8, 2, out + 19);
  out[23] = '-';
  writeHex(b + 10, 6, out + 24);
}

// Clock steps back further than this are believed (NTP corrections, VM restore) rather than
// papered over by reusing the old millisecond for a long time.
constexpr uint64_t kMaxBackwardStepMs = 10'000;
constexpr uint32_t kCounterMax = 0xfff;

}  // namespace

const uint8_t* IdGenerator::take(size_t n) {
  if (kPoolSize - used_ < n) refill();
  const uint8_t* p = pool_.data() + used_;
  used_ += n;
  return p;
}

void IdGenerator::refill() {
  size_t filled = 0;
  while (filled < kPoolSize) {
    ssize_t got = getrandom(pool_.data() + filled, kPoolSize - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      // Predictable ids would be worse than failing loudly; this only happens on kernels
      // without getrandom (pre-3.17), which are unsupported.
      throw std::system_error(errno, std::generic_category(), "getrandom");
    }
    filled += static_cast<size_t>(got);
  }
  used_ = 0;
}

void IdGenerator::uuid4(char out[kUuidSize]) {
  uint8_t b[16];
  std::memcpy(b, take(16), 16);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  writeUuid(b, out);
}

void IdGenerator::uuid7(char out[kUuidSize]) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
  uuid7At(ms > 0 ? static_cast<uint64_t>(ms) : 0, out);
}

void IdGenerator::uuid7At(uint64_t unix_ms, char out[kUuidSize]) {
  const uint8_t* r = take(10);
  bool same_or_behind = unix_ms <= uuid7_last_ms_ && uuid7_last_ms_ - unix_ms <= kMaxBackwardStepMs;
  if (same_or_behind && uuid7_counter_ < kCounterMax) {
    ++uuid7_counter_;
  } else {
    // A new millisecond (or an exhausted counter, which borrows the next millisecond) starts
    // the counter at a random value with its top bit clear: unguessable, yet with at least
    // 2048 increments of room.
    uuid7_last_ms_ = same_or_behind ? uuid7_last_ms_ + 1 : unix_ms;
    uuid7_counter_ = static_cast<uint32_t>(((r[8] << 8) | r[9]) & 0x7ff);
  }
  uint64_t ms = uuid7_last_ms_ & 0xffff'ffff'ffffULL;
  uint8_t b[16];
  for (int i = 0; i < 6; ++i)
    b[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
  b[6] = static_cast<uint8_t>(0x70 | (uuid7_counter_ >> 8));
  b[7] = static_cast<uint8_t>(uuid7_counter_ & 0xff);
  std::memcpy(b + 8, r, 8);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  writeUuid(b, out);
}

void IdGenerator::newId(IdFormat format, char out[kUuidSize]) {
  if (format == IdFormat::kUuid7) {
    uuid7(out);
  } else {
    uuid4(out);
  }
}

std::string IdGenerator::newId(IdFormat format) {
  std::string id(kUuidSize, '\0');
  newId(format, id.data());
  return id;
}

void IdGenerator::randomNonZeroHex(size_t bytes, char* out) {
  for (;;) {
    const uint8_t* r = take(bytes);
    uint8_t any = 0;
    for (size_t i = 0; i < bytes; ++i)
      any |= r[i];
    if (any != 0) {
      writeHex(r, bytes, out);
      return;
    }
  }
}

void IdGenerator::traceId(char out[kTraceIdSize]) {
  randomNonZeroHex(kTraceIdSize / 2, out);
}

void IdGenerator::spanId(char out[kSpanIdSize]) {
  randomNonZeroHex(kSpanIdSize / 2, out);
}

}  // namespace viscount
