#include "telemetry/log_sampling.h"

#include <cmath>
#include <string_view>

namespace viscount {
namespace {

// The rightmost 14 hex digits (56 bits) of a 32-digit trace id; false when there is none (trace
// context off).
bool traceBits(std::string_view trace_id, uint64_t& bits) {
  if (trace_id.size() != 32) return false;
  bits = 0;
  for (char c : trace_id.substr(32 - 14)) {
    uint64_t digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return false;
    }
    bits = bits << 4 | digit;
  }
  return true;
}

// Without a trace id (trace context off) the request id decides: FNV-1a, top 56 bits. Still the
// same answer for the same id, in any process.
uint64_t requestIdBits(std::string_view id) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : id) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash >> 8;
}

}  // namespace

LogSampling::LogSampling(double fraction) {
  if (!(fraction > 0)) {
    threshold_ = 0;
  } else if (fraction >= 1) {
    threshold_ = kScale;
  } else {
    threshold_ = static_cast<uint64_t>(std::ldexp(fraction, 56));
  }
}

bool LogSampling::keep(const RequestContext& ctx) const {
  if (threshold_ == kScale || ctx.trace_sampled_by_caller) return true;
  uint64_t bits;
  if (!traceBits(ctx.trace_id, bits)) bits = requestIdBits(ctx.request_id);
  return bits < threshold_;
}

}  // namespace viscount
