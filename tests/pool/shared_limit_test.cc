// SharedLimit: the count every worker shares for an upstream's concurrency limit and connection
// cap. It must never hand out more than its capacity, even when threads race, and a release on
// one worker must wake the waiting members of the others through their own loops.

#include "pool/shared_limit.h"

#include <event2/event.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "proxy/net/event_loop.h"

namespace viscount {
namespace {

struct CountingMember : LimitMember {
  int available = 0;
  int wanted = 0;
  void onUnitsAvailable() override { ++available; }
  void onUnitWanted() override { ++wanted; }
};

// Runs what was posted to `loop` so far.
void turn(EventLoop& loop) {
  event_base_loop(loop.base(), EVLOOP_NONBLOCK);
  event_base_loop(loop.base(), EVLOOP_NONBLOCK);
}

TEST(SharedLimitTest, HandsOutUpToItsCapacity) {
  EventLoop loop;
  auto limit = std::make_shared<SharedLimit>(std::vector<EventLoop*>{&loop}, 2);
  EXPECT_TRUE(limit->tryAcquire());
  EXPECT_TRUE(limit->tryAcquire());
  EXPECT_FALSE(limit->tryAcquire());
  EXPECT_EQ(limit->inUse(), 2u);
  limit->release();
  EXPECT_TRUE(limit->tryAcquire());
  EXPECT_FALSE(limit->tryAcquire());
}

TEST(SharedLimitTest, LoweringTheCapacityKeepsUnitsHeldAndRefusesNewOnes) {
  EventLoop loop;
  auto limit = std::make_shared<SharedLimit>(std::vector<EventLoop*>{&loop}, 3);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(limit->tryAcquire());
  limit->setCapacity(1);
  limit->release();
  limit->release();
  EXPECT_FALSE(limit->tryAcquire());  // one still held: at the new capacity
  limit->release();
  EXPECT_TRUE(limit->tryAcquire());
}

TEST(SharedLimitTest, WaiterCountIsBounded) {
  EventLoop loop;
  auto limit = std::make_shared<SharedLimit>(std::vector<EventLoop*>{&loop}, 1);
  EXPECT_TRUE(limit->tryAddWaiter(2));
  EXPECT_TRUE(limit->tryAddWaiter(2));
  EXPECT_FALSE(limit->tryAddWaiter(2));
  limit->removeWaiter();
  EXPECT_TRUE(limit->tryAddWaiter(2));
  EXPECT_FALSE(limit->tryAddWaiter(0));
}

TEST(SharedLimitTest, ReleaseWakesOnlyWaitingMembersThroughTheirOwnLoop) {
  EventLoop a, b;
  auto limit = std::make_shared<SharedLimit>(std::vector<EventLoop*>{&a, &b}, 1);
  CountingMember on_a, on_b, idle_b;
  on_a.joinLimit(limit, 0);
  on_b.joinLimit(limit, 1);
  idle_b.joinLimit(limit, 1);
  ASSERT_TRUE(limit->tryAcquire());
  on_b.setWaiting(true);
  EXPECT_TRUE(limit->contended());
  limit->release();
  EXPECT_EQ(on_b.available, 0);  // not called inline: it runs on b's loop
  turn(a);
  EXPECT_EQ(on_a.available, 0);
  turn(b);
  EXPECT_EQ(on_b.available, 1);
  EXPECT_EQ(idle_b.available, 0);
  on_b.setWaiting(false);
  EXPECT_FALSE(limit->contended());
  ASSERT_TRUE(limit->tryAcquire());
  limit->release();
  turn(b);
  EXPECT_EQ(on_b.available, 1);  // nobody waits: no wake-up
}

TEST(SharedLimitTest, ADestroyedWaitingMemberStopsCountingAsWaiting) {
  EventLoop a;
  auto limit = std::make_shared<SharedLimit>(std::vector<EventLoop*>{&a}, 1);
  {
    CountingMember m;
    m.joinLimit(limit, 0);
    m.setWaiting(true);
    EXPECT_TRUE(limit->contended());
  }
  EXPECT_FALSE(limit->contended());
}

TEST(SharedLimitTest, AskingForAUnitReachesTheOtherWorkersOnly) {
  EventLoop a, b, c;
  auto limit = std::make_shared<SharedLimit>(std::vector<EventLoop*>{&a, &b, &c}, 1);
  CountingMember on_a, on_b, on_c;
  on_a.joinLimit(limit, 0);
  on_b.joinLimit(limit, 1);
  on_c.joinLimit(limit, 2);
  limit->askOthersForUnit(on_a);
  turn(a);
  turn(b);
  turn(c);
  EXPECT_EQ(on_a.wanted, 0);
  EXPECT_EQ(on_b.wanted, 1);
  EXPECT_EQ(on_c.wanted, 1);
}

TEST(SharedLimitTest, RacingThreadsNeverExceedTheCapacity) {
  EventLoop loop;
  constexpr uint64_t kCapacity = 3;
  auto limit = std::make_shared<SharedLimit>(std::vector<EventLoop*>{&loop}, kCapacity);
  std::atomic<int> holders{0};
  std::atomic<int> peak{0};
  std::atomic<uint64_t> taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        if (!limit->tryAcquire()) continue;
        const int n = ++holders;
        for (int p = peak.load(); n > p && !peak.compare_exchange_weak(p, n);) {
        }
        ++taken;
        --holders;
        limit->release();
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_LE(peak.load(), static_cast<int>(kCapacity));
  EXPECT_GT(taken.load(), 0u);
  EXPECT_EQ(limit->inUse(), 0u);
}

}  // namespace
}  // namespace viscount
