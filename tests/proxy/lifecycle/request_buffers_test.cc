// RequestBuffers: a finished request's buffers go to the next one, capacity only.

#include "proxy/lifecycle/request_buffers.h"

#include <gtest/gtest.h>

#include <string>

namespace viscount {
namespace {

RequestHead headWith(std::string_view target) {
  RequestHead head;
  head.method = "GET";
  head.target = target;
  head.authority = "example.test";
  head.headers.add("x-request-id", "0b0c7a4e-2b3f-4e7c-9d51-6c1f3a2e8b90");
  return head;
}

TEST(RequestBuffersTest, TheNextRequestGetsTheCapacityButNotTheContents) {
  RequestBuffers buffers;
  RequestContext first;
  UpstreamRequest first_request;
  buffers.lend(first, first_request);  // nothing kept yet: nothing lent
  EXPECT_EQ(first.request_id.capacity(), std::string().capacity());
  first.request_id = "0b0c7a4e-2b3f-4e7c-9d51-6c1f3a2e8b90";
  first.correlation_id = "a-correlation-id-longer-than-inline";
  first.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  first.span_id = "00f067aa0ba902b7";
  first.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  first_request.assign(headWith("/first/request/with/a/long/enough/target"));
  const char* id_storage = first.request_id.data();
  buffers.reclaim(first, first_request);
  EXPECT_EQ(buffers.kept(), 1u);
  EXPECT_TRUE(first.request_id.empty());

  RequestContext second;
  UpstreamRequest second_request;
  buffers.lend(second, second_request);
  EXPECT_EQ(buffers.kept(), 0u);
  EXPECT_EQ(second.request_id.data(), id_storage) << "the buffer itself passed on";
  for (const std::string* s : {&second.request_id, &second.correlation_id, &second.trace_id,
                               &second.span_id, &second.traceparent}) {
    EXPECT_TRUE(s->empty()) << "contents passed on: " << *s;
    EXPECT_GE(s->capacity(), 16u);
  }
  EXPECT_GT(second_request.bufferCapacity(), 0u);
  second_request.assign(headWith("/second"));
  EXPECT_EQ(second_request.target(), "/second");
  EXPECT_EQ(second_request.method(), "GET");
}

TEST(RequestBuffersTest, LargeBuffersAndTooManyRequestsAreNotKept) {
  RequestBuffers buffers;
  RequestContext big;
  UpstreamRequest big_request;
  big.request_id.assign(RequestBuffers::kMaxKeptCapacity + 1, 'x');
  big_request.assign(headWith(std::string(RequestBuffers::kMaxKeptCapacity + 1, 'p')));
  buffers.reclaim(big, big_request);
  RequestContext next;
  UpstreamRequest next_request;
  buffers.lend(next, next_request);
  EXPECT_LE(next.request_id.capacity(), RequestBuffers::kMaxKeptCapacity);
  EXPECT_EQ(next_request.bufferCapacity(), UpstreamRequest().bufferCapacity());

  for (size_t i = 0; i < RequestBuffers::kMaxKept + 10; ++i) {
    RequestContext ctx;
    UpstreamRequest request;
    ctx.request_id = "0b0c7a4e-2b3f-4e7c-9d51-6c1f3a2e8b90";
    buffers.reclaim(ctx, request);
  }
  EXPECT_EQ(buffers.kept(), RequestBuffers::kMaxKept);
}

}  // namespace
}  // namespace viscount
