// Costs the limits add to every request: arming and cancelling a timer with many others pending
// (header, idle, request and wait timers of thousands of connections), and taking and giving back
// a concurrency slot.

#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "filters/request_limiter.h"
#include "pool/shared_limit.h"
#include "proxy/net/event_loop.h"
#include "proxy/net/timer_queue.h"

namespace viscount {
namespace {

void noop(void*) {}

// One timer armed and cancelled while state.range(0) others wait, spread over four durations.
void BM_TimerArmCancel(benchmark::State& state) {
  EventLoop loop;
  std::vector<std::unique_ptr<Timer>> pending;
  const std::chrono::milliseconds durations[] = {std::chrono::seconds(10), std::chrono::minutes(5),
                                                 std::chrono::seconds(15), std::chrono::seconds(5)};
  for (int64_t i = 0; i < state.range(0); ++i) {
    pending.push_back(std::make_unique<Timer>(loop.timers(), &noop, nullptr));
    pending.back()->arm(durations[i % 4]);
  }
  Timer timer(loop.timers(), &noop, nullptr);
  for (auto _ : state) {
    timer.arm(std::chrono::seconds(15));
    timer.cancel();
  }
}
BENCHMARK(BM_TimerArmCancel)->Arg(0)->Arg(10000)->Arg(100000);

struct NeverGranted : SlotWaiter {
  void onSlotGranted() override {}
};

// admit() and release() of one request under an uncontended limit.
void BM_SlotAdmitRelease(benchmark::State& state) {
  EventLoop loop;
  auto slots = std::make_shared<SharedLimit>(std::vector<EventLoop*>{&loop}, 100);
  RequestLimiter limiter(loop, slots, 0, UpstreamConfig::Limits{}, nullptr, nullptr);
  NeverGranted waiter;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter.admit(waiter));
    limiter.release();
  }
}
BENCHMARK(BM_SlotAdmitRelease);

}  // namespace
}  // namespace viscount
