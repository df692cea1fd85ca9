#pragma once

// The heap buffers of a request (its ids, trace context and the head sent upstream) handed from
// a finished request to the next one on the same worker, so that a request in steady state
// allocates none of them: a uuid or a traceparent does not fit a std::string's inline storage,
// and they were 6 of the 9 allocations of a proxied request.
//
// Only capacity passes on, never contents: every string is cleared when it is taken back, and
// a request gets its buffers before anything is written into them. Buffers grown large by an
// unusual request are not kept. Owned by one worker; never touched from another thread.

#include <string>
#include <vector>

#include "proxy/http/request_context.h"
#include "proxy/http/upstream_request.h"

namespace viscount {

class RequestBuffers {
 public:
  // Gives a freshly made context and request the buffers of a finished request, if one is kept.
  void lend(RequestContext& ctx, UpstreamRequest& request);
  // Takes the buffers back from a request that is done with them (its context is read no more).
  void reclaim(RequestContext& ctx, UpstreamRequest& request);

  size_t kept() const { return spares_.size(); }

  // Requests whose buffers are kept at once: beyond that many finishing together, the rest are
  // freed. And the largest buffer kept.
  static constexpr size_t kMaxKept = 64;
  static constexpr size_t kMaxKeptCapacity = 4096;

 private:
  struct Spare {
    std::string request_id, correlation_id, trace_id, span_id, traceparent;
    UpstreamRequest storage;  // only its buffers are used
  };
  std::vector<Spare> spares_;
};

}  // namespace viscount
