#pragma once

// The storage behind the metrics. Every cell lives in one worker's shard and has exactly one
// writer, that worker, so an update is a relaxed load and store (a plain add, no locked
// instruction) and the admin thread reads a torn-free value through the same atomic while it sums
// the shards. A cell must never be updated from a thread other than its shard's owner: post to the
// owning worker instead (a second writer would lose updates, not crash).

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace viscount {

class Counter {
 public:
  void add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void add(int64_t delta) {
    value_.store(value_.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Upper bounds, in seconds, of the latency histogram buckets; +Inf follows.
inline constexpr std::array<double, 14> kLatencyBucketBounds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

class Histogram {
 public:
  static constexpr size_t kBuckets = kLatencyBucketBounds.size() + 1;

  void observe(double seconds) {
    size_t i = 0;
    while (i < kLatencyBucketBounds.size() && seconds > kLatencyBucketBounds[i])
      ++i;
    counts_[i].add();
    sum_.store(sum_.load(std::memory_order_relaxed) + seconds, std::memory_order_relaxed);
  }

  // Per-bucket counts (not cumulative) and the sum, added up over shards at render.
  struct Totals {
    std::array<uint64_t, kBuckets> counts{};
    double sum = 0;

    void add(const Histogram& h) {
      for (size_t i = 0; i < kBuckets; ++i)
        counts[i] += h.counts_[i].value();
      sum += h.sum_.load(std::memory_order_relaxed);
    }
  };

 private:
  std::array<Counter, kBuckets> counts_;
  std::atomic<double> sum_{0};
};

// Counters indexed directly by HTTP status code, so counting a response is an array access with
// no map lookup or label formatting. A block of a hundred codes is allocated by the owner the first
// time a code of that class is seen; render reads the block pointers with acquire.
class StatusCounters {
 public:
  StatusCounters() = default;
  StatusCounters(const StatusCounters&) = delete;
  StatusCounters& operator=(const StatusCounters&) = delete;
  ~StatusCounters() {
    for (auto& block : blocks_)
      delete block.load(std::memory_order_relaxed);
  }

  // Codes outside 0..999 count as 0 ("no status").
  void add(int status) {
    const auto code = static_cast<unsigned>(status >= 0 && status < 1000 ? status : 0);
    Block* block = blocks_[code / 100].load(std::memory_order_relaxed);
    if (block == nullptr) {
      block = new Block();
      blocks_[code / 100].store(block, std::memory_order_release);
    }
    (*block)[code % 100].add();
  }

  // Calls `fn(code, count)` for every code seen, in ascending order.
  template <typename Fn>
  void forEach(Fn&& fn) const {
    for (size_t b = 0; b < blocks_.size(); ++b) {
      const Block* block = blocks_[b].load(std::memory_order_acquire);
      if (block == nullptr) continue;
      for (size_t i = 0; i < block->size(); ++i) {
        if (const uint64_t n = (*block)[i].value(); n > 0) fn(static_cast<int>(b * 100 + i), n);
      }
    }
  }

 private:
  using Block = std::array<Counter, 100>;
  std::array<std::atomic<Block*>, 10> blocks_{};
};

// Cells of one family keyed by a label value (a reason, a listener, a connection state), owned by
// one shard. Lookup is a linear scan by the owner without a lock: there are a handful of values and
// only the owner changes the list. Adding a value takes the registry mutex, which render also holds
// while it iterates, so render never sees the list mid-change. Cells have stable addresses.
template <typename Cell>
class LabelledCells {
 public:
  LabelledCells() = default;
  // Values present from the start (render shows them at zero); only before the owner is shared.
  explicit LabelledCells(std::initializer_list<std::string_view> labels) {
    for (std::string_view label : labels)
      entries_.push_back(std::make_unique<Entry>(label));
  }

  Cell& get(std::string_view label, std::mutex& registry) {
    for (const auto& entry : entries_) {
      if (entry->label == label) return entry->cell;
    }
    std::lock_guard lock(registry);
    entries_.push_back(std::make_unique<Entry>(label));
    return entries_.back()->cell;
  }

  // The caller holds the registry mutex.
  template <typename Fn>
  void forEach(Fn&& fn) const {
    for (const auto& entry : entries_)
      fn(std::string_view(entry->label), entry->cell);
  }

 private:
  struct Entry {
    explicit Entry(std::string_view l) : label(l) {}
    std::string label;
    Cell cell;
  };
  std::vector<std::unique_ptr<Entry>> entries_;
};

}  // namespace viscount
