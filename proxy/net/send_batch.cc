#include "proxy/net/send_batch.h"

#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace viscount {

struct SendBatch::Ring {
  io_uring ring{};
  bool ready = false;
  ~Ring() {
    if (ready) io_uring_queue_exit(&ring);
  }
};

namespace {

// A send with MSG_DONTWAIT into a full socket must come back -EAGAIN at once. A kernel that
// instead parks it until the socket has room would stall the loop inside submit(): such a
// kernel (or one whose io_uring cannot send at all) is not used.
bool sendsFailFast(io_uring& ring) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) return false;
  int small = 4096;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  char block[4096] = {};
  while (::send(fds[0], block, sizeof block, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
  }
  bool ok = false;
  if (io_uring_sqe* sqe = io_uring_get_sqe(&ring)) {
    io_uring_prep_send(sqe, fds[0], block, sizeof block, MSG_DONTWAIT | MSG_NOSIGNAL);
    __kernel_timespec wait{};
    wait.tv_nsec = 200 * 1000 * 1000;
    io_uring_cqe* cqe = nullptr;
    if (io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &wait, nullptr) >= 0 && cqe != nullptr) {
      ok = cqe->res == -EAGAIN;
      io_uring_cqe_seen(&ring, cqe);
    }
  }
  ::close(fds[0]);  // a send still parked (the probe failed) ends with its socket
  ::close(fds[1]);
  return ok;
}

}  // namespace

bool SendBatch::disabledByEnvironment() {
  const char* value = std::getenv("VISCOUNT_IO_URING");
  if (value == nullptr) return false;
  const std::string_view v(value);
  return v == "off" || v == "0" || v == "false";
}

std::unique_ptr<SendBatch> SendBatch::create(unsigned depth) {
  if (disabledByEnvironment()) return nullptr;
  auto ring = std::make_unique<Ring>();
  // Only this thread submits, and every completion is reaped right after its submit.
  if (io_uring_queue_init(depth, &ring->ring, 0) < 0) return nullptr;
  ring->ready = true;
  if (!sendsFailFast(ring->ring)) return nullptr;
  return std::unique_ptr<SendBatch>(new SendBatch(std::move(ring), depth));
}

SendBatch::SendBatch(std::unique_ptr<Ring> ring, unsigned depth)
    : ring_(std::move(ring)), depth_(depth) {
  results_.reserve(depth);
  lengths_.reserve(depth);
}

SendBatch::~SendBatch() = default;

void SendBatch::add(int fd, const void* data, size_t len) {
  // The ring has depth_ entries and the caller checks full() first.
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  io_uring_prep_send(sqe, fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, queued_);
  if (queued_ == 0) lengths_.clear();
  lengths_.push_back(len);
  ++queued_;
}

bool SendBatch::submit() {
  results_.assign(queued_, -ECANCELED);
  unsigned left = queued_;
  queued_ = 0;
  bool ok = true;
  while (left > 0) {
    const int rv = io_uring_submit_and_wait(&ring_->ring, left);
    if (rv < 0 && rv != -EINTR && rv != -EAGAIN && rv != -EBUSY) {
      ok = false;  // the ring itself failed: what did not complete stays -ECANCELED
      break;
    }
    io_uring_cqe* cqe = nullptr;
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_->ring, head, cqe) {
      const uint64_t index = io_uring_cqe_get_data64(cqe);
      if (index < results_.size()) results_[index] = cqe->res;
      ++seen;
    }
    io_uring_cq_advance(&ring_->ring, seen);
    left = seen >= left ? 0 : left - seen;
  }
  return ok;
}

}  // namespace viscount
