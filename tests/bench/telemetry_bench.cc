// Per-request costs of telemetry: formatting an access-log line, JSON string escaping, handing a
// line to the writer, and counting a completed request in the metrics.

#include <benchmark/benchmark.h>
#include <time.h>

#include <chrono>
#include <string>
#include <thread>

#include "telemetry/access_log.h"
#include "telemetry/access_log_format.h"
#include "telemetry/event_log.h"
#include "telemetry/json_escape.h"
#include "telemetry/metrics.h"
#include "tests/telemetry/telemetry_test_support.h"

namespace viscount {
namespace {

void BM_FormatAccessLogJson(benchmark::State& state) {
  const RequestContext ctx = testing::typicalRequest();
  std::string out;
  for (auto _ : state) {
    out.clear();
    formatAccessLogJson(out, ctx);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out.size()));
}
BENCHMARK(BM_FormatAccessLogJson);

void BM_FormatAccessLogPretty(benchmark::State& state) {
  const RequestContext ctx = testing::typicalRequest();
  std::string out;
  for (auto _ : state) {
    out.clear();
    formatAccessLogPretty(out, ctx, true);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_FormatAccessLogPretty);

void escapeBench(benchmark::State& state, const std::string& value) {
  std::string out;
  for (auto _ : state) {
    out.clear();
    appendJsonString(out, value);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * value.size()));
}

void BM_AppendJsonStringClean40(benchmark::State& state) {
  escapeBench(state, "/api/v1/orders/12345/items?limit=20&x=ab");  // 40 bytes
}
BENCHMARK(BM_AppendJsonStringClean40);

void BM_AppendJsonStringUtf8_40(benchmark::State& state) {
  escapeBench(state,
              "/caf\xC3\xA9/\xE2\x82\xAC/\xF0\x9F\x98\x80/na\xC3\xAFve/r\xC3\xA9sum\xC3\xA9/xx");
}
BENCHMARK(BM_AppendJsonStringUtf8_40);

void BM_AppendJsonStringHostile40(benchmark::State& state) {
  escapeBench(state,
              "/a\"b\\c\n\r\t\x01\x1b[31m\xFF\xC0\xAF\xED\xA0\x80\xE2\x82/\"\"\\\\\x7f\x00z");
}
BENCHMARK(BM_AppendJsonStringHostile40);

void BM_AppendJsonStringClean4K(benchmark::State& state) {
  escapeBench(state, std::string(4000, 'a'));
}
BENCHMARK(BM_AppendJsonStringClean4K);

double cpuNanos(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// A worker appending `range(0)` lines per loop turn and flushing, with the writer thread writing to
// /dev/null. Every 512 lines the worker waits (untimed) for the writer to catch up, so nothing is
// dropped. The time is the worker's; `writer_ns_per_line` is the writer thread's CPU per line.
void BM_AccessLogAppendFlush(benchmark::State& state) {
  LoggingConfig cfg;
  cfg.access_log = "/dev/null";
  std::string error;
  auto log = AccessLog::open(cfg, 1, &error);
  AccessLogShard& shard = log->shard(0);
  const RequestContext ctx = testing::typicalRequest();
  const auto per_turn = static_cast<uint64_t>(state.range(0));
  const double process_start = cpuNanos(CLOCK_PROCESS_CPUTIME_ID);
  const double thread_start = cpuNanos(CLOCK_THREAD_CPUTIME_ID);
  uint64_t appended = 0;
  for (auto _ : state) {
    for (uint64_t i = 0; i < per_turn; ++i)
      shard.append(ctx);
    shard.flush();
    appended += per_turn;
    if (appended % 512 < per_turn) {
      state.PauseTiming();
      while (log->writtenLines() + log->droppedLines() < appended) {
        shard.flush();
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      state.ResumeTiming();
    }
  }
  while (!shard.flush()) {
  }
  log->stop();
  const double writer_ns = (cpuNanos(CLOCK_PROCESS_CPUTIME_ID) - process_start) -
                           (cpuNanos(CLOCK_THREAD_CPUTIME_ID) - thread_start);
  state.SetItemsProcessed(static_cast<int64_t>(appended));
  state.counters["dropped"] = static_cast<double>(log->droppedLines());
  state.counters["writer_ns_per_line"] = writer_ns / static_cast<double>(appended);
}
BENCHMARK(BM_AccessLogAppendFlush)->Arg(1)->Arg(8)->Arg(64);

// The worker's cost alone when the shard is full: the line is counted and not formatted.
void BM_AccessLogAppendWhenFull(benchmark::State& state) {
  LoggingConfig cfg;
  cfg.access_log = "/dev/null";
  cfg.buffer = 1;
  auto log = AccessLog::open(cfg, 1, nullptr);
  AccessLogShard& shard = log->shard(0);
  const RequestContext ctx = testing::typicalRequest();
  while (shard.append(ctx) || log->droppedLines() == 0) {
  }
  for (auto _ : state)
    benchmark::DoNotOptimize(shard.append(ctx));
  log->stop();
}
BENCHMARK(BM_AccessLogAppendWhenFull);

void BM_MetricsRequestCompleted(benchmark::State& state) {
  Metrics metrics(1);
  MetricsShard& shard = metrics.shard(0);
  UpstreamMetrics& app = shard.upstream("app");
  RequestContext ctx = testing::typicalRequest();
  int i = 0;
  for (auto _ : state) {
    ctx.status = (++i & 7) == 0 ? 404 : 200;
    shard.requestCompleted(app, ctx);
  }
}
BENCHMARK(BM_MetricsRequestCompleted);

void BM_MetricsRender(benchmark::State& state) {
  Metrics metrics(2);
  for (size_t s = 0; s < 2; ++s) {
    MetricsShard& shard = metrics.shard(s);
    RequestContext ctx = testing::typicalRequest();
    for (int status : {200, 201, 304, 404, 503}) {
      ctx.status = status;
      shard.requestCompleted(shard.upstream("app"), ctx);
    }
    shard.rejected("overloaded");
    shard.downstreamConnectionOpened("inbound");
  }
  for (auto _ : state)
    benchmark::DoNotOptimize(metrics.renderPrometheus());
}
BENCHMARK(BM_MetricsRender);

void BM_EventLogInfo(benchmark::State& state) {
  auto log = EventLog::create(LogFormat::kJson, LogLevel::kInfo, -1);  // writes fail, cost stays
  for (auto _ : state) {
    log->log(LogLevel::kInfo, "upstream_healthy", {{"upstream", "app"}, {"latency_ms", 1.5}}, "id");
  }
}
BENCHMARK(BM_EventLogInfo);

void BM_EventLogFilteredOut(benchmark::State& state) {
  auto log = EventLog::create(LogFormat::kJson, LogLevel::kInfo, -1);
  for (auto _ : state)
    log->log(LogLevel::kDebug, "upstream_probe", {{"upstream", "app"}});
}
BENCHMARK(BM_EventLogFilteredOut);

}  // namespace
}  // namespace viscount
