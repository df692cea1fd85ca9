#pragma once

// The socket writes of one loop turn, issued with one system call (io_uring) instead of one
// send() each. What this saves is less the calls themselves than what each send does on a busy
// machine: a send that wakes the peer (the upstream on the same core, say) gets this thread
// preempted on its way back to user space, so a turn with N writes became N switches between the
// proxy and the peer, each handling one request. Sent together, the peer wakes once and finds
// all N. Every send is non-blocking (MSG_DONTWAIT): a full socket answers -EAGAIN at once, as
// send() does, so nothing waits in the kernel and callers keep their usual backpressure.
//
// io_uring may be missing (old kernels) or refused (the default seccomp profiles of recent
// container runtimes block it): create() then returns nullptr and the loop writes with send() as
// before. So does config `io_uring: false`, and VISCOUNT_IO_URING=off in the environment (which
// lets a test run take the other path).

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <vector>

namespace viscount {

class SendBatch {
 public:
  // nullptr when io_uring cannot be used here. `depth` is the most sends issued per call.
  static std::unique_ptr<SendBatch> create(unsigned depth = 256);
  // VISCOUNT_IO_URING=off (or 0, false) is set.
  static bool disabledByEnvironment();
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;
  ~SendBatch();

  bool full() const { return queued_ == depth_; }
  size_t size() const { return queued_; }
  // Queues a send of [data, data + len) on `fd`; the bytes must stay put until submit() returns.
  void add(int fd, const void* data, size_t len);
  // Issues everything queued and waits for the results (non-blocking sends complete inside the
  // call). results()[i] is what the i-th add() got: bytes sent, or -errno; -ECANCELED for a send
  // that never went. False when the ring failed: the batch should not be used again.
  bool submit();
  const std::vector<ssize_t>& results() const { return results_; }
  // lengths()[i]: the length the i-th add() asked to send.
  const std::vector<size_t>& lengths() const { return lengths_; }

 private:
  struct Ring;
  SendBatch(std::unique_ptr<Ring> ring, unsigned depth);

  std::unique_ptr<Ring> ring_;
  unsigned depth_;
  unsigned queued_ = 0;
  std::vector<ssize_t> results_;
  std::vector<size_t> lengths_;
};

}  // namespace viscount
