#pragma once

// The file descriptor end of the access log, used only by the writer thread. It writes batches of
// complete lines with as few syscalls as it can (one writev for many batches) and keeps an exact
// account of lines written and lines lost, so `written + dropped` always equals what was queued.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace viscount {

struct LineBatch {
  std::string_view text;  // one or more complete lines, each ending in '\n'
  uint32_t lines = 0;
};

class LineOutput {
 public:
  struct Result {
    uint64_t written = 0;
    uint64_t dropped = 0;
  };

  // `owns_fd`: close it on destruction (a file we opened; never stdout or stderr).
  LineOutput(int fd, bool owns_fd);
  ~LineOutput();
  LineOutput(const LineOutput&) = delete;
  LineOutput& operator=(const LineOutput&) = delete;

  // Writes the batches in order. Partial writes and EINTR are retried; a descriptor that stays
  // unwritable (EAGAIN beyond a short grace period), EPIPE or any other error drops what is left.
  Result write(std::span<const LineBatch> batches);

  // Points the descriptor at a freshly opened `path` (after logrotate moved the old file). Safe to
  // call from another thread while the writer is writing: dup2 swaps the file atomically.
  bool reopen(const std::string& path, std::string* error);

  // Opens `path` for appending (O_APPEND|O_CREAT, mode 0644); -1 with `*error` set on failure.
  static int openAppend(const std::string& path, std::string* error);

  int fd() const { return fd_; }

 private:
  Result writeFrom(std::span<const LineBatch> batches);
  bool waitWritable(int64_t deadline_ms);

  int fd_;
  bool owns_fd_;
  // A failure left half a line in the output: start the next write with '\n' so that the damage
  // stays confined to that one line.
  bool broken_line_ = false;
};

}  // namespace viscount
