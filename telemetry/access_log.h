#pragma once

// The access log: one line per completed request, formatted on the worker that owns the request
// and written by one background thread, so a worker never blocks on log I/O.
//
// Each worker has an AccessLogShard. append() formats into the shard's current batch; flush(),
// called once at the end of each event-loop turn, publishes the batch to the writer through a
// single-producer/single-consumer ring (no lock on the worker side). The writer gathers the
// published batches of all shards into one writev. When a shard already holds its share of
// `logging.buffer` lines, further lines are dropped and counted instead of waiting.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/config.h"
#include "proxy/http/request_context.h"
#include "telemetry/log_sampling.h"
#include "telemetry/query_redaction.h"

namespace viscount {

class AccessLog;
class LineOutput;

class AccessLogShard {
 public:
  AccessLogShard(const AccessLogShard&) = delete;
  AccessLogShard& operator=(const AccessLogShard&) = delete;
  ~AccessLogShard();

  // Formats the line into the current batch. Never blocks. Returns true when this line started a
  // new batch, i.e. when the caller should make sure flush() runs at the end of this loop turn.
  // Returns false when the log is off or the line was dropped because the shard is full.
  bool append(const RequestContext& ctx);

  // Hands the current batch to the writer. Returns false when the batch had to stay with the
  // shard because the writer is behind by a whole ring of batches; it keeps growing and goes out
  // with a later flush, so the caller should flush again soon (e.g. from a short timer) even if no
  // new request arrives.
  bool flush();

  uint64_t droppedLines() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t sampledOutLines() const { return sampled_out_.load(std::memory_order_relaxed); }

 private:
  friend class AccessLog;
  struct Slot {
    std::string text;
    uint32_t lines = 0;
  };

  AccessLogShard(AccessLog& log, size_t capacity_lines);

  AccessLog& log_;
  const size_t capacity_lines_;
  std::vector<Slot> slots_;

  // Worker side.
  std::string batch_;
  uint32_t batch_lines_ = 0;
  uint64_t published_lines_ = 0;
  alignas(64) std::atomic<uint64_t> head_{0};  // next slot the worker fills
  std::atomic<uint64_t> dropped_{0};           // written by the worker only
  std::atomic<uint64_t> sampled_out_{0};       // written by the worker only
  std::string redacted_path_;                  // scratch for the logged copy of a target

  // Writer side.
  alignas(64) std::atomic<uint64_t> tail_{0};  // next slot the writer takes
  std::atomic<uint64_t> consumed_lines_{0};    // written by the writer only
};

class AccessLog {
 public:
  // `cfg.access_log` is "stdout", "stderr", "off" or a file path (opened O_APPEND|O_CREAT, 0644).
  // `shards` is the number of workers. Returns null with `*error` set when the file cannot be
  // opened.
  static std::unique_ptr<AccessLog> open(const LoggingConfig& cfg, size_t shards,
                                         std::string* error);
  // Writes to `fd`, which the caller keeps open (tests capture output through a pipe or a file).
  // `cfg.access_log` is ignored except that "off" still turns the log off.
  static std::unique_ptr<AccessLog> openFd(int fd, const LoggingConfig& cfg, size_t shards);

  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  AccessLogShard& shard(size_t worker_index) { return *shards_[worker_index]; }

  // viscount_access_log_dropped_total: lines a full shard refused plus lines the output lost.
  uint64_t droppedLines() const;
  uint64_t writtenLines() const { return written_.load(std::memory_order_relaxed); }
  // viscount_access_log_sampled_out_total: successes `logging.sample.success` left out.
  uint64_t sampledOutLines() const;

  // Writes everything the shards have flushed and joins the writer. Workers flush their last
  // batch before this is called (a shard's batch belongs to its worker thread). Idempotent.
  void stop();

  // Reopens a file target (e.g. after logrotate moved it). No-op for stdout and stderr.
  bool reopen(std::string* error = nullptr);

  bool enabled() const { return format_ != Format::kOff; }

 private:
  friend class AccessLogShard;
  enum class Format { kOff, kJson, kPretty, kPrettyColour };
  struct DrainScratch;

  AccessLog(std::unique_ptr<LineOutput> output, std::string path, const LoggingConfig& cfg,
            size_t shards);
  static Format chooseFormat(const LoggingConfig& cfg, int fd);

  void format(std::string& out, const RequestContext& ctx, std::string_view path, bool trail) const;
  // After a batch is published: wakes the writer if it is parked, or early if `filling`.
  void wakeWriter(bool filling);
  void poke();
  void run();
  // Writes what every shard has published; returns the number of batches taken.
  size_t drain(DrainScratch& scratch);
  bool anyPublished() const;

  const Format format_;
  const QueryRedaction redaction_;
  const LogSampling sampling_;
  const Duration trail_slow_;
  const std::string path_;  // empty unless the target is a file
  std::unique_ptr<LineOutput> output_;
  std::vector<std::unique_ptr<AccessLogShard>> shards_;

  alignas(64) std::atomic<bool> parked_{false};  // the writer sleeps until poked
  std::atomic<bool> poked_{false};               // a filling shard already poked this cycle
  std::atomic<bool> stopping_{false};
  // Workers take this only to wake the writer: when it is parked or a shard is half full.
  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
  bool wake_ = false;
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> output_dropped_{0};
  std::thread writer_;
};

}  // namespace viscount
