// TimerQueue on a real EventLoop: per-duration FIFO lanes behind one libevent timer. Each test
// runs the loop in the test thread until a timer stops it; a watchdog stops it if something
// never fires. Order assertions use well separated durations, and no timer may fire before its
// deadline.

#include "proxy/net/timer_queue.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "proxy/net/event_loop.h"

namespace viscount {
namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

// A timer that logs its id when it fires and then runs an optional action.
class Probe {
 public:
  Probe(EventLoop& loop, std::vector<int>* log, int id)
      : timer(loop.timers(), &Probe::onFire, this), log_(log), id_(id) {}

  Timer timer;
  int fires = 0;
  bool early = false;  // fired before its deadline
  std::function<void()> then;

 private:
  static void onFire(void* arg) {
    auto* self = static_cast<Probe*>(arg);
    if (Clock::now() < self->timer.deadline()) self->early = true;
    ++self->fires;
    if (self->log_) self->log_->push_back(self->id_);
    if (self->then) self->then();
  }

  std::vector<int>* log_;
  int id_;
};

class TimerQueueTest : public ::testing::Test {
 protected:
  // Runs the loop until something calls loop_.stop(), or the watchdog does after `limit`.
  void run(milliseconds limit = 10s) {
    Probe watchdog(loop_, nullptr, -1);
    watchdog.then = [this] {
      timed_out_ = true;
      loop_.stop();
    };
    watchdog.timer.arm(limit);
    loop_.run();
    EXPECT_FALSE(timed_out_) << "the loop was stopped by the watchdog";
  }

  std::function<void()> stopLoop() {
    return [this] { loop_.stop(); };
  }

  EventLoop loop_;
  bool timed_out_ = false;
};

TEST_F(TimerQueueTest, FiresInDeadlineOrderAcrossDurations) {
  std::vector<int> log;
  // Armed out of order, each duration in its own lane, the longest lane created first.
  Probe t300(loop_, &log, 300);
  Probe t20a(loop_, &log, 20);
  Probe t180(loop_, &log, 180);
  Probe t20b(loop_, &log, 21);
  Probe t100(loop_, &log, 100);
  t300.timer.arm(300ms);
  t20a.timer.arm(20ms);
  t180.timer.arm(180ms);
  t20b.timer.arm(20ms);
  t100.timer.arm(100ms);
  EXPECT_EQ(loop_.timers().pending(), 5u);
  t300.then = stopLoop();
  run();
  EXPECT_EQ(log, (std::vector<int>{20, 21, 100, 180, 300}));
  for (const Probe* p : {&t300, &t20a, &t180, &t20b, &t100}) {
    EXPECT_EQ(p->fires, 1);
    EXPECT_FALSE(p->early);
    EXPECT_FALSE(p->timer.armed());
  }
  EXPECT_EQ(loop_.timers().pending(), 0u);
}

TEST_F(TimerQueueTest, SameDurationFiresInArmOrder) {
  std::vector<int> log;
  std::vector<std::unique_ptr<Probe>> probes;
  for (int i = 0; i < 50; ++i) {
    probes.push_back(std::make_unique<Probe>(loop_, &log, i));
    probes.back()->timer.arm(30ms);
  }
  probes.back()->then = stopLoop();
  run();
  std::vector<int> expected;
  for (int i = 0; i < 50; ++i)
    expected.push_back(i);
  EXPECT_EQ(log, expected);
}

TEST_F(TimerQueueTest, ZeroDurationFiresOnTheNextTurn) {
  Probe t(loop_, nullptr, 0);
  t.then = stopLoop();
  t.timer.arm(0ms);
  EXPECT_TRUE(t.timer.armed());
  EXPECT_EQ(t.fires, 0) << "never from inside arm()";
  run();
  EXPECT_EQ(t.fires, 1);
}

TEST_F(TimerQueueTest, CancelPreventsFiring) {
  std::vector<int> log;
  Probe cancelled(loop_, &log, 1);
  Probe other_lane(loop_, &log, 2);
  Probe same_lane(loop_, &log, 3);
  cancelled.timer.arm(20ms);
  same_lane.timer.arm(20ms);
  other_lane.timer.arm(80ms);
  cancelled.timer.cancel();
  EXPECT_FALSE(cancelled.timer.armed());
  EXPECT_EQ(loop_.timers().pending(), 2u);
  cancelled.timer.cancel();  // cancelling twice is harmless
  other_lane.then = stopLoop();
  run();
  EXPECT_EQ(log, (std::vector<int>{3, 2}));
  EXPECT_EQ(cancelled.fires, 0);
}

TEST_F(TimerQueueTest, CancellingTheEarliestStillFiresTheNext) {
  // The libevent timer was set for the cancelled one; it must be followed by the later one.
  std::vector<int> log;
  Probe first(loop_, &log, 1);
  Probe second(loop_, &log, 2);
  first.timer.arm(10ms);
  second.timer.arm(60ms);
  first.timer.cancel();
  second.then = stopLoop();
  run();
  EXPECT_EQ(log, (std::vector<int>{2}));
  EXPECT_FALSE(second.early);
}

TEST_F(TimerQueueTest, ReArmMovesTheDeadlineLater) {
  std::vector<int> log;
  Probe moved(loop_, &log, 1);
  Probe middle(loop_, &log, 2);
  const auto start = Clock::now();
  moved.timer.arm(20ms);
  middle.timer.arm(100ms);
  moved.timer.arm(250ms);
  EXPECT_EQ(loop_.timers().pending(), 2u) << "re-arming does not duplicate the timer";
  moved.then = stopLoop();
  run();
  EXPECT_EQ(log, (std::vector<int>{2, 1}));
  EXPECT_EQ(moved.fires, 1);
  EXPECT_GE(Clock::now() - start, 250ms);
  EXPECT_FALSE(moved.early);
}

TEST_F(TimerQueueTest, ReArmMovesTheDeadlineEarlier) {
  std::vector<int> log;
  Probe moved(loop_, &log, 1);
  Probe middle(loop_, &log, 2);
  moved.timer.arm(5s);
  middle.timer.arm(200ms);
  moved.timer.arm(20ms);
  middle.then = stopLoop();
  run();
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
}

TEST_F(TimerQueueTest, ReArmInTheSameLaneGoesToTheBack) {
  std::vector<int> log;
  Probe a(loop_, &log, 1);
  Probe b(loop_, &log, 2);
  a.timer.arm(40ms);
  b.timer.arm(40ms);
  a.timer.arm(40ms);
  a.then = stopLoop();
  run();
  EXPECT_EQ(log, (std::vector<int>{2, 1}));
}

TEST_F(TimerQueueTest, CallbackArmsAndCancelsOtherTimers) {
  std::vector<int> log;
  Probe first(loop_, &log, 1);
  Probe cancelled(loop_, &log, 2);
  Probe armed_same_lane(loop_, &log, 3);
  Probe armed_new_lane(loop_, &log, 4);
  first.then = [&] {
    cancelled.timer.cancel();
    armed_same_lane.timer.arm(60ms);  // the lane being expired right now
    armed_new_lane.timer.arm(10ms);
  };
  armed_same_lane.then = stopLoop();
  first.timer.arm(60ms);
  cancelled.timer.arm(100ms);  // would fire before the loop stops
  run();
  EXPECT_EQ(log, (std::vector<int>{1, 4, 3}));
  EXPECT_EQ(cancelled.fires, 0);
  EXPECT_FALSE(armed_same_lane.early);
  EXPECT_FALSE(armed_new_lane.early);
}

TEST_F(TimerQueueTest, CallbackCancelsAnotherExpiredTimer) {
  std::vector<int> log;
  Probe a(loop_, &log, 1);
  Probe b(loop_, &log, 2);
  Probe c(loop_, &log, 3);
  a.then = [&] { b.timer.cancel(); };
  c.then = stopLoop();
  a.timer.arm(10ms);
  b.timer.arm(10ms);
  c.timer.arm(60ms);
  // Both are due by the time the loop first looks, so they expire in the same pass.
  std::this_thread::sleep_for(30ms);
  run();
  EXPECT_EQ(log, (std::vector<int>{1, 3}));
}

TEST_F(TimerQueueTest, CallbackDestroysTheNextTimerInItsLane) {
  std::vector<int> log;
  Probe a(loop_, &log, 1);
  auto b = std::make_unique<Probe>(loop_, &log, 2);
  Probe c(loop_, &log, 3);
  a.then = [&] { b.reset(); };
  c.then = stopLoop();
  a.timer.arm(10ms);
  b->timer.arm(10ms);
  c.timer.arm(10ms);
  std::this_thread::sleep_for(30ms);
  run();
  EXPECT_EQ(log, (std::vector<int>{1, 3}));
}

TEST_F(TimerQueueTest, TimerCanReArmItselfFromItsCallback) {
  Probe periodic(loop_, nullptr, 0);
  periodic.then = [&] {
    if (periodic.fires < 5) {
      periodic.timer.arm(5ms);
    } else {
      loop_.stop();
    }
  };
  periodic.timer.arm(5ms);
  run();
  EXPECT_EQ(periodic.fires, 5);
  EXPECT_FALSE(periodic.early);
}

TEST_F(TimerQueueTest, ThousandsOfTimers) {
  constexpr int kTimers = 5000;
  constexpr int kLanes = 5;
  std::vector<int> log;
  log.reserve(kTimers);
  std::vector<std::unique_ptr<Probe>> probes;
  int fired = 0;
  for (int i = 0; i < kTimers; ++i) {
    probes.push_back(std::make_unique<Probe>(loop_, &log, i));
    probes.back()->then = [&] {
      if (++fired == kTimers) loop_.stop();
    };
    probes.back()->timer.arm(milliseconds(10 * (1 + i % kLanes)));
  }
  // Cancel every tenth one; they must not count.
  int cancelled = 0;
  for (int i = 0; i < kTimers; i += 10) {
    probes[static_cast<size_t>(i)]->timer.cancel();
    ++cancelled;
  }
  EXPECT_EQ(loop_.timers().pending(), static_cast<size_t>(kTimers - cancelled));
  fired = cancelled;  // so the last live timer stops the loop
  run();
  EXPECT_EQ(log.size(), static_cast<size_t>(kTimers - cancelled));
  EXPECT_EQ(loop_.timers().pending(), 0u);
  std::map<int, int> last_in_lane;
  for (int id : log) {
    EXPECT_NE(id % 10, 0) << "cancelled timer " << id << " fired";
    const int lane = id % kLanes;
    auto it = last_in_lane.find(lane);
    if (it != last_in_lane.end()) {
      EXPECT_LT(it->second, id) << "lane " << lane << " out of arm order";
    }
    last_in_lane[lane] = id;
  }
  for (const auto& p : probes) {
    EXPECT_FALSE(p->early);
    EXPECT_LE(p->fires, 1);
  }
}

TEST(TimerQueueLifetimeTest, TimersOutlivingTheirQueueAreDisarmed) {
  auto loop = std::make_unique<EventLoop>();
  Probe a(*loop, nullptr, 1);
  Probe b(*loop, nullptr, 2);
  a.timer.arm(1s);
  b.timer.arm(2s);
  loop.reset();
  EXPECT_FALSE(a.timer.armed());
  EXPECT_FALSE(b.timer.armed());
}

}  // namespace
}  // namespace viscount
