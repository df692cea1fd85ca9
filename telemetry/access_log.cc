#include "telemetry/access_log.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>

#include "telemetry/access_log_format.h"
#include "telemetry/line_output.h"

namespace viscount {
namespace {

// Batches in flight per shard: a worker publishes at most one per loop turn. If the ring is full
// the batch stays with the worker and keeps growing, so nothing is lost, but the writer is poked
// when a ring is half full so that this stays rare.
constexpr size_t kSlotsPerShard = 64;

// A floor for each shard's share of `logging.buffer`, so that even a tiny setting absorbs the lines
// of one writer interval.
constexpr uint64_t kMinLinesPerShard = 256;

// Batch buffers are recycled through the ring (the worker gets a cleared one back for each batch it
// publishes), so steady state allocates nothing. A buffer is kept while the batches it carries
// fill at least a quarter of it; one left over from a burst is freed, so memory follows the load.
constexpr size_t kAlwaysRetainedBatchBytes = 4096;
constexpr size_t kMaxRetainedBatchBytes = 256 * 1024;

bool retainBatchBuffer(const std::string& text) {
  const size_t capacity = text.capacity();
  return capacity <= kAlwaysRetainedBatchBytes ||
         (capacity <= kMaxRetainedBatchBytes && text.size() >= capacity / 4);
}

// While lines keep coming the writer wakes on this period and writes everything queued with one
// writev, rather than being woken (a futex syscall on the worker) for every batch. A worker pokes
// it early only when its shard is half full. Only after kQuietDrains drains in a row found
// nothing does the writer park until a worker pokes it, so an idle proxy costs no CPU here, while
// at a moderate rate (a slow app, ~1,000 requests a second) a short gap between requests does not
// park it and make the next request's worker pay a wake-up: that cost 0.6 futex calls per
// request on the worker's core (tests/bench/pod_regime.sh).
constexpr auto kActiveInterval = std::chrono::milliseconds(20);
constexpr int kQuietDrains = 10;  // 200 ms without a line

}  // namespace

struct AccessLog::DrainScratch {
  std::vector<LineBatch> batches;
  std::vector<uint64_t> heads;  // per shard: the head the batches were taken up to
};

// --- AccessLogShard ------------------------------------------------------------------------------

AccessLogShard::AccessLogShard(AccessLog& log, size_t capacity_lines)
    : log_(log), capacity_lines_(capacity_lines), slots_(kSlotsPerShard) {}

AccessLogShard::~AccessLogShard() = default;

bool AccessLogShard::append(const RequestContext& ctx) {
  if (!log_.enabled()) return false;
  // A failure, or a success slower than logging.trail.slow, says how it went.
  const bool trail = ctx.status >= 500 || ctx.error != ErrorCode::kNone ||
                     (log_.trail_slow_.count() > 0 && ctx.end - ctx.start > log_.trail_slow_);
  // Sampling only ever leaves out plain successes: an error, a 4xx or 5xx, a line with a trail, a
  // gRPC call that failed (HTTP 200 with a grpc_status other than OK) is always written.
  if (!log_.sampling_.keepsEverything() && ctx.status < 400 && ctx.status > 0 && !trail &&
      ctx.grpc_status <= 0 && !log_.sampling_.keep(ctx)) {
    sampled_out_.store(sampled_out_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return false;
  }
  const uint64_t queued =
      published_lines_ - consumed_lines_.load(std::memory_order_relaxed) + batch_lines_;
  if (queued >= capacity_lines_) {
    dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return false;
  }
  const bool redacted = log_.redaction_.redact(ctx.path, redacted_path_);
  log_.format(batch_, ctx, redacted ? std::string_view(redacted_path_) : std::string_view(ctx.path),
              trail);
  return ++batch_lines_ == 1;
}

bool AccessLogShard::flush() {
  if (batch_lines_ == 0) return true;
  const uint64_t head = head_.load(std::memory_order_relaxed);
  // Acquire: the writer has finished with the slot (and cleared it) before it moved the tail.
  const uint64_t tail = tail_.load(std::memory_order_acquire);
  if (head - tail == slots_.size()) return false;
  Slot& slot = slots_[head % slots_.size()];
  // The slot's cleared buffer comes back as the next batch, so steady state allocates nothing.
  slot.text.swap(batch_);
  slot.lines = batch_lines_;
  published_lines_ += batch_lines_;
  batch_lines_ = 0;
  // seq_cst, as are the loads of `parked_` in wakeWriter() and the store of `parked_` and the loads
  // of the heads in run(): either the writer sees this batch before it parks, or wakeWriter() sees
  // the writer parked and wakes it. (A fence would say the same but is not supported by TSan.)
  head_.store(head + 1, std::memory_order_seq_cst);
  const bool filling =
      head + 1 - tail >= slots_.size() / 2 ||
      published_lines_ - consumed_lines_.load(std::memory_order_relaxed) >= capacity_lines_ / 2;
  log_.wakeWriter(filling);
  return true;
}

// --- AccessLog -----------------------------------------------------------------------------------

std::unique_ptr<AccessLog> AccessLog::open(const LoggingConfig& cfg, size_t shards,
                                           std::string* error) {
  if (cfg.access_log == "off") return openFd(-1, cfg, shards);
  if (cfg.access_log == "stdout") return openFd(STDOUT_FILENO, cfg, shards);
  if (cfg.access_log == "stderr") return openFd(STDERR_FILENO, cfg, shards);
  const int fd = LineOutput::openAppend(cfg.access_log, error);
  if (fd < 0) return nullptr;
  return std::unique_ptr<AccessLog>(
      new AccessLog(std::make_unique<LineOutput>(fd, true), cfg.access_log, cfg, shards));
}

std::unique_ptr<AccessLog> AccessLog::openFd(int fd, const LoggingConfig& cfg, size_t shards) {
  return std::unique_ptr<AccessLog>(
      new AccessLog(std::make_unique<LineOutput>(fd, false), std::string(), cfg, shards));
}

AccessLog::Format AccessLog::chooseFormat(const LoggingConfig& cfg, int fd) {
  if (cfg.access_log == "off" || fd < 0) return Format::kOff;
  if (cfg.format == LogFormat::kJson) return Format::kJson;
  return ::isatty(fd) ? Format::kPrettyColour : Format::kPretty;
}

AccessLog::AccessLog(std::unique_ptr<LineOutput> output, std::string path, const LoggingConfig& cfg,
                     size_t shards)
    : format_(chooseFormat(cfg, output->fd())),
      redaction_(cfg.redact_query),
      sampling_(cfg.sample_success),
      trail_slow_(cfg.trail_slow),
      path_(std::move(path)),
      output_(std::move(output)) {
  shards = std::max<size_t>(shards, 1);
  const uint64_t per_shard = std::max<uint64_t>(cfg.buffer / shards, kMinLinesPerShard);
  for (size_t i = 0; i < shards; ++i) {
    shards_.push_back(std::unique_ptr<AccessLogShard>(new AccessLogShard(*this, per_shard)));
  }
  if (enabled()) writer_ = std::thread([this] { run(); });
}

AccessLog::~AccessLog() {
  stop();
}

uint64_t AccessLog::droppedLines() const {
  uint64_t total = output_dropped_.load(std::memory_order_relaxed);
  for (const auto& shard : shards_)
    total += shard->droppedLines();
  return total;
}

uint64_t AccessLog::sampledOutLines() const {
  uint64_t total = 0;
  for (const auto& shard : shards_)
    total += shard->sampledOutLines();
  return total;
}

void AccessLog::stop() {
  if (!writer_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  poke();
  writer_.join();
}

bool AccessLog::reopen(std::string* error) {
  if (path_.empty()) return true;
  return output_->reopen(path_, error);
}

void AccessLog::format(std::string& out, const RequestContext& ctx, std::string_view path,
                       bool trail) const {
  switch (format_) {
    case Format::kOff:
      return;
    case Format::kJson:
      formatAccessLogJson(out, ctx, path, trail);
      return;
    case Format::kPretty:
      formatAccessLogPretty(out, ctx, path, false);
      return;
    case Format::kPrettyColour:
      formatAccessLogPretty(out, ctx, path, true);
      return;
  }
}

void AccessLog::wakeWriter(bool filling) {
  // Under load the writer is not parked and this is a plain load of a rarely written line; a
  // filling shard pokes once per writer cycle.
  if (parked_.load(std::memory_order_seq_cst) ||
      (filling && !poked_.load(std::memory_order_relaxed) &&
       !poked_.exchange(true, std::memory_order_relaxed))) {
    poke();
  }
}

void AccessLog::poke() {
  {
    std::lock_guard lock(wake_mutex_);
    wake_ = true;
  }
  wake_cv_.notify_one();
}

bool AccessLog::anyPublished() const {
  return std::any_of(shards_.begin(), shards_.end(), [](const auto& shard) {
    return shard->head_.load(std::memory_order_seq_cst) !=
           shard->tail_.load(std::memory_order_relaxed);
  });
}

void AccessLog::run() {
  // Process signals (SIGTERM, SIGHUP) belong to the main thread; a broken pipe must come back as
  // EPIPE from write rather than kill the process.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);

  DrainScratch scratch;
  int quiet = 0;  // drains in a row that found nothing
  while (true) {
    const bool stopping = stopping_.load(std::memory_order_acquire);
    const size_t batches = drain(scratch);
    if (stopping) {
      if (batches == 0) return;
      continue;
    }
    quiet = batches > 0 ? 0 : quiet + 1;
    std::unique_lock lock(wake_mutex_);
    if (quiet < kQuietDrains) {
      wake_cv_.wait_for(lock, kActiveInterval, [this] { return wake_; });
    } else {
      quiet = 0;
      parked_.store(true, std::memory_order_seq_cst);
      if (!anyPublished()) wake_cv_.wait(lock, [this] { return wake_; });
      parked_.store(false, std::memory_order_relaxed);
    }
    wake_ = false;
    poked_.store(false, std::memory_order_relaxed);
  }
}

size_t AccessLog::drain(DrainScratch& scratch) {
  scratch.batches.clear();
  scratch.heads.clear();
  for (auto& shard : shards_) {
    const uint64_t tail = shard->tail_.load(std::memory_order_relaxed);
    const uint64_t head = shard->head_.load(std::memory_order_acquire);
    for (uint64_t i = tail; i != head; ++i) {
      const auto& slot = shard->slots_[i % shard->slots_.size()];
      scratch.batches.push_back({slot.text, slot.lines});
    }
    scratch.heads.push_back(head);
  }
  if (scratch.batches.empty()) return 0;

  const LineOutput::Result result = output_->write(scratch.batches);
  written_.store(written_.load(std::memory_order_relaxed) + result.written,
                 std::memory_order_relaxed);
  output_dropped_.store(output_dropped_.load(std::memory_order_relaxed) + result.dropped,
                        std::memory_order_relaxed);

  for (size_t s = 0; s < shards_.size(); ++s) {
    AccessLogShard& shard = *shards_[s];
    uint64_t lines = 0;
    for (uint64_t i = shard.tail_.load(std::memory_order_relaxed); i != scratch.heads[s]; ++i) {
      auto& slot = shard.slots_[i % shard.slots_.size()];
      lines += slot.lines;
      if (retainBatchBuffer(slot.text)) {
        slot.text.clear();
      } else {
        std::string().swap(slot.text);
      }
    }
    shard.consumed_lines_.store(shard.consumed_lines_.load(std::memory_order_relaxed) + lines,
                                std::memory_order_relaxed);
    shard.tail_.store(scratch.heads[s], std::memory_order_release);
  }
  return scratch.batches.size();
}

}  // namespace viscount
