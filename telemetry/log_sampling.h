#pragma once

// Which plain successes the access log keeps when `logging.sample.success` is below 1.
//
// The decision is a pure function of the trace id, so every hop of one trace (every viscount in a
// call chain, and any other sampler that reads the id the same way) keeps or drops its lines
// together, and a retried request with the same trace stays consistent. Lines that say something
// went wrong are never sampled: the caller only asks about successes.

#include <cstdint>

#include "proxy/http/request_context.h"

namespace viscount {

class LogSampling {
 public:
  // `fraction` in [0, 1]: the share of successes kept.
  explicit LogSampling(double fraction);

  bool keepsEverything() const { return threshold_ == kScale; }

  // True when the line of a successful request goes out. A caller that samples its trace (the
  // sampled flag of its traceparent) always gets its lines.
  bool keep(const RequestContext& ctx) const;

 private:
  // The comparison is over 56 bits: the random part of a W3C trace id (its rightmost 7 bytes).
  static constexpr uint64_t kScale = uint64_t{1} << 56;
  uint64_t threshold_;
};

}  // namespace viscount
