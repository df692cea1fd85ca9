#pragma once

// One event loop per thread over a libevent event_base (the "dispatcher"). Beyond libevent it
// gives each worker: an end-of-turn phase in which buffered socket writes are flushed (so
// everything a turn produced for one socket goes out in one write) and objects that asked to die
// inside their own callbacks are deleted; cross-thread posting; the worker's timers and buffer
// cache. Nothing here is shared between threads except post().

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "proxy/net/buffer.h"
#include "proxy/net/intrusive_list.h"
#include "proxy/net/send_batch.h"
#include "proxy/net/timer_queue.h"

struct event;
struct event_base;

namespace viscount {

struct FlushTag {};

// Base for objects deleted by the loop after the current callback returns.
class Deletable {
 public:
  virtual ~Deletable() = default;
};

// Something with buffered output to write at the end of the current loop turn. Such objects
// (connections) are also deleted by the loop, and extending Deletable gives them one vtable
// pointer for both: thousands of idle connections each keep it.
class Flushable : public Deletable, public ListHook<FlushTag> {
 public:
  virtual void flush() = 0;
  // Batched writing (SendBatch), in three steps. prepareFlush() makes this turn's output final;
  // it returns true when the write can go in the batch, or does the whole flush itself and
  // returns false. queueSend() adds the write (false: nothing to send any more), and
  // completeSend() gets its result (bytes sent or -errno) and the length that was queued.
  virtual bool prepareFlush() {
    flush();
    return false;
  }
  virtual bool queueSend(SendBatch& /*batch*/) { return false; }
  virtual void completeSend(ssize_t /*result*/, size_t /*length*/) {}
};

class EventLoop {
 public:
  EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  ~EventLoop();

  event_base* base() const { return base_; }
  TimerQueue& timers() { return *timers_; }
  BufferCache& buffers() { return buffers_; }

  // Runs until stop(); call from the owning thread.
  void run();
  // One turn: waits for at least one event, handles what is ready, ends the turn.
  void runOnce();
  // Makes run() return after the current turn. Thread-safe.
  void stop();
  // Runs `fn` on the loop's thread in a later turn. Thread-safe.
  void post(std::function<void()> fn);

  void scheduleFlush(Flushable& f) {
    if (!static_cast<ListHook<FlushTag>&>(f).inList()) flushes_.pushBack(f);
  }
  void deferDelete(std::unique_ptr<Deletable> object) { deferred_.push_back(std::move(object)); }
  // Writes each turn's output with one io_uring call (SendBatch) when this machine allows it;
  // call before run(). batchedSends() says whether it does.
  void useBatchedSends();
  bool batchedSends() const { return batch_ != nullptr; }
  // Deletes everything deferred so far (also what those deletions defer).
  void runDeferred();
  // Called at the end of every turn, after flushes (e.g. hand access-log lines to the writer).
  void addEndOfTurnHook(std::function<void()> hook) { hooks_.push_back(std::move(hook)); }

 private:
  void endOfTurn();
  void flushAll();
  void drainPosted();
  static void onWake(int fd, short, void* arg);

  event_base* base_;
  std::unique_ptr<TimerQueue> timers_;
  BufferCache buffers_;
  IntrusiveList<Flushable, FlushTag> flushes_;
  std::unique_ptr<SendBatch> batch_;  // null: one send() per socket
  std::vector<Flushable*> prepared_;  // this round's writes that go in the batch
  std::vector<Flushable*> queued_;
  std::vector<std::unique_ptr<Deletable>> deferred_;
  std::vector<std::function<void()>> hooks_;

  int wake_fd_ = -1;
  event* wake_event_ = nullptr;
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;
  std::atomic<bool> stopping_{false};
};

}  // namespace viscount
