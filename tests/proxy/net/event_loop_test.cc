// EventLoop: cross-thread post() and stop(), deferred deletion, end-of-turn flushes and hooks.
// Each test runs the loop in the test thread; a watchdog timer stops it if the test's own stop
// never comes.

#include "proxy/net/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace viscount {
namespace {

using namespace std::chrono_literals;

class Watchdog {
 public:
  explicit Watchdog(EventLoop& loop) : loop_(loop), timer_(loop.timers(), &Watchdog::onFire, this) {
    timer_.arm(10s);
  }
  bool fired() const { return fired_; }

 private:
  static void onFire(void* arg) {
    auto* self = static_cast<Watchdog*>(arg);
    self->fired_ = true;
    self->loop_.stop();
  }
  EventLoop& loop_;
  Timer timer_;
  bool fired_ = false;
};

// Runs the loop until stopped; fails the test if only the watchdog stopped it.
void runLoop(EventLoop& loop) {
  Watchdog watchdog(loop);
  loop.run();
  EXPECT_FALSE(watchdog.fired()) << "the loop was stopped by the watchdog";
}

// Logs its name when deleted; may defer another object's deletion from its destructor.
class Tracked : public Deletable {
 public:
  Tracked(std::vector<std::string>* log, std::string name) : log_(log), name_(std::move(name)) {}
  ~Tracked() override {
    log_->push_back(name_);
    if (next_) loop_->deferDelete(std::move(next_));
  }
  void deferOnDeath(EventLoop& loop, std::unique_ptr<Deletable> next) {
    loop_ = &loop;
    next_ = std::move(next);
  }

 private:
  std::vector<std::string>* log_;
  std::string name_;
  EventLoop* loop_ = nullptr;
  std::unique_ptr<Deletable> next_;
};

class CountingFlush : public Flushable {
 public:
  explicit CountingFlush(int* counter = nullptr) : counter_(counter) {}
  void flush() override {
    ++flushes;
    if (counter_) ++*counter_;
    if (then) then();
  }
  int flushes = 0;
  std::function<void()> then;

 private:
  int* counter_;
};

// ---- post and stop -----------------------------------------------------------------------------

TEST(EventLoopTest, PostFromAnotherThreadRunsOnTheLoopThread) {
  EventLoop loop;
  std::thread::id ran_on;
  std::thread poster([&] {
    loop.post([&] {
      ran_on = std::this_thread::get_id();
      loop.stop();
    });
  });
  runLoop(loop);
  poster.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(EventLoopTest, PostsFromSeveralThreadsAllRunInOrderPerThread) {
  constexpr int kThreads = 4;
  constexpr int kPosts = 1000;
  EventLoop loop;
  std::vector<std::vector<int>> seen(kThreads);  // touched on the loop thread only
  int total = 0;
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPosts; ++i) {
        loop.post([&, t, i] {
          seen[static_cast<size_t>(t)].push_back(i);
          if (++total == kThreads * kPosts) loop.stop();
        });
      }
    });
  }
  runLoop(loop);
  for (auto& p : posters)
    p.join();
  EXPECT_EQ(total, kThreads * kPosts);
  for (int t = 0; t < kThreads; ++t) {
    const auto& s = seen[static_cast<size_t>(t)];
    ASSERT_EQ(s.size(), static_cast<size_t>(kPosts)) << "thread " << t;
    for (int i = 0; i < kPosts; ++i)
      ASSERT_EQ(s[static_cast<size_t>(i)], i) << "thread " << t;
  }
}

TEST(EventLoopTest, PostFromTheLoopThreadRunsInALaterCallback) {
  EventLoop loop;
  bool inner_ran = false;
  bool inner_ran_synchronously = false;
  loop.post([&] {
    loop.post([&] {
      inner_ran = true;
      loop.stop();
    });
    inner_ran_synchronously = inner_ran;
  });
  runLoop(loop);
  EXPECT_TRUE(inner_ran);
  EXPECT_FALSE(inner_ran_synchronously);
}

TEST(EventLoopTest, StopFromAnotherThreadWhileTheLoopWaits) {
  EventLoop loop;
  std::atomic<bool> running{false};
  loop.post([&] { running = true; });
  std::thread stopper([&] {
    while (!running)
      std::this_thread::sleep_for(1ms);
    // The loop is now blocked waiting for events; only stop() can end it.
    std::this_thread::sleep_for(20ms);
    loop.stop();
  });
  runLoop(loop);
  stopper.join();
  EXPECT_TRUE(running);
}

TEST(EventLoopTest, StopBeforeRunStillEndsTheTurn) {
  EventLoop loop;
  int hooks = 0;
  loop.addEndOfTurnHook([&] { ++hooks; });
  std::vector<std::string> log;
  loop.deferDelete(std::make_unique<Tracked>(&log, "pending"));
  loop.stop();
  loop.run();
  EXPECT_EQ(hooks, 1);
  EXPECT_EQ(log, (std::vector<std::string>{"pending"}));
}

// ---- deferred deletion -------------------------------------------------------------------------

TEST(EventLoopTest, DeferredDeleteRunsAfterTheCurrentCallbacks) {
  EventLoop loop;
  std::vector<std::string> log;
  bool alive_in_callback = false;
  bool alive_in_next_callback = false;
  bool deleted_before_hook = false;
  // Both callbacks run in the same turn.
  loop.post([&] {
    loop.deferDelete(std::make_unique<Tracked>(&log, "victim"));
    alive_in_callback = log.empty();
  });
  loop.post([&] { alive_in_next_callback = log.empty(); });
  loop.addEndOfTurnHook([&] {
    if (!log.empty()) {
      deleted_before_hook = true;
      loop.stop();
    }
  });
  runLoop(loop);
  EXPECT_TRUE(alive_in_callback);
  EXPECT_TRUE(alive_in_next_callback);
  EXPECT_TRUE(deleted_before_hook);
  EXPECT_EQ(log, (std::vector<std::string>{"victim"}));
}

TEST(EventLoopTest, DeferredDestructorMayDeferMore) {
  EventLoop loop;
  std::vector<std::string> log;
  auto first = std::make_unique<Tracked>(&log, "first");
  auto second = std::make_unique<Tracked>(&log, "second");
  auto third = std::make_unique<Tracked>(&log, "third");
  second->deferOnDeath(loop, std::move(third));
  first->deferOnDeath(loop, std::move(second));
  loop.deferDelete(std::move(first));
  loop.deferDelete(std::make_unique<Tracked>(&log, "sibling"));
  EXPECT_TRUE(log.empty());
  loop.runDeferred();
  EXPECT_EQ(log, (std::vector<std::string>{"first", "sibling", "second", "third"}));
  loop.runDeferred();
  EXPECT_EQ(log.size(), 4u) << "nothing is deleted twice";
}

TEST(EventLoopTest, ChainedDeferralsEndWithinOneTurn) {
  EventLoop loop;
  std::vector<std::string> log;
  size_t deleted_at_hook = 0;
  loop.post([&] {
    auto a = std::make_unique<Tracked>(&log, "a");
    auto b = std::make_unique<Tracked>(&log, "b");
    b->deferOnDeath(loop, std::make_unique<Tracked>(&log, "c"));
    a->deferOnDeath(loop, std::move(b));
    loop.deferDelete(std::move(a));
    loop.stop();
  });
  loop.addEndOfTurnHook([&] { deleted_at_hook = log.size(); });
  runLoop(loop);
  EXPECT_EQ(deleted_at_hook, 3u);
}

TEST(EventLoopTest, DestroyingTheLoopDeletesWhatWasDeferred) {
  std::vector<std::string> log;
  {
    EventLoop loop;
    auto a = std::make_unique<Tracked>(&log, "a");
    a->deferOnDeath(loop, std::make_unique<Tracked>(&log, "b"));
    loop.deferDelete(std::move(a));
  }
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b"}));
}

// ---- end of turn -------------------------------------------------------------------------------

TEST(EventLoopTest, ScheduleFlushFlushesOncePerTurn) {
  EventLoop loop;
  CountingFlush f;
  CountingFlush g;
  std::vector<int> f_at_hook;
  loop.post([&] {
    loop.scheduleFlush(f);
    loop.scheduleFlush(g);
    loop.scheduleFlush(f);
    EXPECT_EQ(f.flushes, 0) << "flushing waits for the end of the turn";
  });
  loop.addEndOfTurnHook([&] {
    f_at_hook.push_back(f.flushes);
    if (f_at_hook.size() == 1) {
      // Next turn: scheduled twice again, flushed once more.
      loop.post([&] {
        loop.scheduleFlush(f);
        loop.scheduleFlush(f);
      });
    } else if (f.flushes == 2) {
      loop.stop();
    }
  });
  runLoop(loop);
  EXPECT_EQ(f.flushes, 2);
  EXPECT_EQ(g.flushes, 1);
  ASSERT_FALSE(f_at_hook.empty());
  EXPECT_EQ(f_at_hook[0], 1) << "hooks run after the turn's flushes";
}

TEST(EventLoopTest, FlushesScheduledWhileFlushingRunInTheSameTurn) {
  EventLoop loop;
  std::vector<std::string> log;
  CountingFlush first;
  CountingFlush second;
  bool rescheduled = false;
  first.then = [&] {
    loop.scheduleFlush(second);
    if (!rescheduled) {
      rescheduled = true;
      loop.scheduleFlush(first);  // more output appeared while flushing
    }
  };
  second.then = [&] { loop.deferDelete(std::make_unique<Tracked>(&log, "done")); };
  int first_at_hook = -1;
  int second_at_hook = -1;
  size_t deleted_at_hook = 0;
  loop.post([&] {
    loop.scheduleFlush(first);
    loop.stop();
  });
  loop.addEndOfTurnHook([&] {
    first_at_hook = first.flushes;
    second_at_hook = second.flushes;
    deleted_at_hook = log.size();
  });
  runLoop(loop);
  EXPECT_EQ(first_at_hook, 2);
  EXPECT_GE(second_at_hook, 1);
  EXPECT_GE(deleted_at_hook, 1u);
}

TEST(EventLoopTest, DestroyedFlushableIsNotFlushed) {
  EventLoop loop;
  int flushes = 0;
  loop.post([&] {
    auto doomed = std::make_unique<CountingFlush>(&flushes);
    loop.scheduleFlush(*doomed);
    doomed.reset();  // unlinks itself from the pending flushes
    loop.stop();
  });
  runLoop(loop);
  EXPECT_EQ(flushes, 0);
}

TEST(EventLoopTest, EndOfTurnHooksRunEveryTurnInOrder) {
  EventLoop loop;
  std::vector<std::string> calls;
  int turns = 0;
  loop.addEndOfTurnHook([&] { calls.push_back("first"); });
  loop.addEndOfTurnHook([&] {
    calls.push_back("second");
    if (++turns < 3) {
      loop.post([] {});  // wake the loop for another turn
    } else {
      loop.stop();
    }
  });
  loop.post([] {});
  runLoop(loop);
  ASSERT_GE(calls.size(), 6u);
  for (size_t i = 0; i + 1 < calls.size(); i += 2) {
    EXPECT_EQ(calls[i], "first");
    EXPECT_EQ(calls[i + 1], "second");
  }
}

TEST(EventLoopTest, BufferCacheBelongsToTheLoop) {
  EventLoop loop;
  {
    Buffer b(&loop.buffers());
    b.append("x");
  }
  EXPECT_EQ(loop.buffers().cachedBlocks(), 1u);
}

}  // namespace
}  // namespace viscount
