#include "telemetry/line_output.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace viscount {
namespace {

constexpr size_t kMaxIovecs = 64;

// How long a non-blocking descriptor may stay full before its lines are dropped: long enough to
// ride out a slow log collector, short enough that the writer goes back to draining the rings.
constexpr int64_t kUnwritableGraceMs = 100;

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

LineOutput::LineOutput(int fd, bool owns_fd) : fd_(fd), owns_fd_(owns_fd) {}

LineOutput::~LineOutput() {
  if (owns_fd_) ::close(fd_);
}

LineOutput::Result LineOutput::write(std::span<const LineBatch> batches) {
  if (broken_line_) {
    const LineBatch newline{"\n", 0};
    writeFrom({&newline, 1});
    if (broken_line_) {
      Result lost;
      for (const auto& batch : batches)
        lost.dropped += batch.lines;
      return lost;
    }
  }
  return writeFrom(batches);
}

LineOutput::Result LineOutput::writeFrom(std::span<const LineBatch> batches) {
  Result result;
  size_t index = 0;
  size_t offset = 0;  // bytes of batches[index] already written
  int64_t deadline = -1;
  while (true) {
    while (index < batches.size() && offset >= batches[index].text.size()) {
      offset -= batches[index].text.size();
      result.written += batches[index].lines;
      broken_line_ = false;
      ++index;
    }
    if (index == batches.size()) return result;

    iovec iov[kMaxIovecs];
    int count = 0;
    for (size_t i = index; i < batches.size() && count < static_cast<int>(kMaxIovecs); ++i) {
      const size_t skip = i == index ? offset : 0;
      iov[count].iov_base = const_cast<char*>(batches[i].text.data() + skip);
      iov[count].iov_len = batches[i].text.size() - skip;
      ++count;
    }
    const ssize_t n = ::writev(fd_, iov, count);
    if (n > 0) {
      offset += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (deadline < 0) deadline = nowMs() + kUnwritableGraceMs;
      if (waitWritable(deadline)) continue;
    }
    break;  // EPIPE, ENOSPC, EBADF, still unwritable, or a write of 0 bytes: give up on the rest
  }

  const LineBatch& partial = batches[index];
  const std::string_view done = partial.text.substr(0, offset);
  const auto complete = static_cast<uint64_t>(std::count(done.begin(), done.end(), '\n'));
  result.written += complete;
  result.dropped += partial.lines - complete;
  if (!done.empty() && done.back() != '\n') broken_line_ = true;
  for (size_t i = index + 1; i < batches.size(); ++i)
    result.dropped += batches[i].lines;
  return result;
}

bool LineOutput::waitWritable(int64_t deadline_ms) {
  while (true) {
    const int64_t wait = deadline_ms - nowMs();
    if (wait <= 0) return false;
    pollfd pfd{fd_, POLLOUT, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(wait));
    if (ready < 0 && errno == EINTR) continue;
    return ready > 0 && (pfd.revents & POLLOUT) != 0 && (pfd.revents & (POLLERR | POLLHUP)) == 0;
  }
}

int LineOutput::openAppend(const std::string& path, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && error) *error = "cannot open " + path + ": " + std::strerror(errno);
  return fd;
}

bool LineOutput::reopen(const std::string& path, std::string* error) {
  if (!owns_fd_) return true;
  const int fd = openAppend(path, error);
  if (fd < 0) return false;
  const bool ok = ::dup3(fd, fd_, O_CLOEXEC) >= 0;
  if (!ok && error) *error = "cannot reopen " + path + ": " + std::strerror(errno);
  ::close(fd);
  return ok;
}

}  // namespace viscount
