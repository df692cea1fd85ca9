#include "proxy/lifecycle/request_buffers.h"

#include <utility>

namespace viscount {
namespace {

void takeFrom(std::string& spare, std::string& field) {
  field.swap(spare);  // field is empty: a new context has not been written yet
}

void giveBack(std::string& field, std::string& spare) {
  spare.swap(field);
  field.clear();
  if (spare.capacity() > RequestBuffers::kMaxKeptCapacity) {
    std::string().swap(spare);
  } else {
    spare.clear();
  }
}

}  // namespace

void RequestBuffers::lend(RequestContext& ctx, UpstreamRequest& request) {
  if (spares_.empty()) return;
  Spare& s = spares_.back();
  takeFrom(s.request_id, ctx.request_id);
  takeFrom(s.correlation_id, ctx.correlation_id);
  takeFrom(s.trace_id, ctx.trace_id);
  takeFrom(s.span_id, ctx.span_id);
  takeFrom(s.traceparent, ctx.traceparent);
  request.swapBuffers(s.storage);
  spares_.pop_back();
}

void RequestBuffers::reclaim(RequestContext& ctx, UpstreamRequest& request) {
  if (spares_.size() >= kMaxKept) return;
  Spare& s = spares_.emplace_back();
  giveBack(ctx.request_id, s.request_id);
  giveBack(ctx.correlation_id, s.correlation_id);
  giveBack(ctx.trace_id, s.trace_id);
  giveBack(ctx.span_id, s.span_id);
  giveBack(ctx.traceparent, s.traceparent);
  if (request.bufferCapacity() <= kMaxKeptCapacity) s.storage.swapBuffers(request);
}

}  // namespace viscount
