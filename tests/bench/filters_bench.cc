// Per-request costs of the filters: id generation, id checks, trace context, and the whole
// request-headers phase on a typical request.

#include <benchmark/benchmark.h>

#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "filters/context_filter.h"
#include "filters/header_sanitizer.h"
#include "filters/id_generator.h"
#include "filters/id_pattern.h"
#include "filters/trace_context.h"

namespace viscount {
namespace {

void BM_Uuid4(benchmark::State& state) {
  IdGenerator ids;
  char out[IdGenerator::kUuidSize];
  for (auto _ : state) {
    ids.uuid4(out);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_Uuid4);

void BM_Uuid7(benchmark::State& state) {
  IdGenerator ids;
  char out[IdGenerator::kUuidSize];
  for (auto _ : state) {
    ids.uuid7(out);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_Uuid7);

void BM_TraceAndSpanId(benchmark::State& state) {
  IdGenerator ids;
  char trace[IdGenerator::kTraceIdSize];
  char span[IdGenerator::kSpanIdSize];
  for (auto _ : state) {
    ids.traceId(trace);
    ids.spanId(span);
    benchmark::DoNotOptimize(trace);
    benchmark::DoNotOptimize(span);
  }
}
BENCHMARK(BM_TraceAndSpanId);

const std::string kIdPattern = "^[A-Za-z0-9._:-]{1,128}$";
const std::string kTypicalId = "0f8fad5b-d9cb-469f-a165-70867728950e";

void BM_IdPatternTable(benchmark::State& state) {
  std::string error;
  IdPattern pattern = *IdPattern::compile(kIdPattern, &error);
  for (auto _ : state)
    benchmark::DoNotOptimize(pattern.matches(kTypicalId));
}
BENCHMARK(BM_IdPatternTable);

void BM_IdPatternStdRegex(benchmark::State& state) {
  std::regex re(kIdPattern, std::regex::ECMAScript);
  for (auto _ : state)
    benchmark::DoNotOptimize(std::regex_match(kTypicalId, re));
}
BENCHMARK(BM_IdPatternStdRegex);

void BM_IdPatternFallback(benchmark::State& state) {
  std::string error;
  IdPattern pattern = *IdPattern::compile("^(?:[A-Za-z0-9._:-]){1,128}$", &error);
  for (auto _ : state)
    benchmark::DoNotOptimize(pattern.matches(kTypicalId));
}
BENCHMARK(BM_IdPatternFallback);

void BM_ParseTraceparent(benchmark::State& state) {
  const std::string value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  for (auto _ : state)
    benchmark::DoNotOptimize(parseTraceparent(value));
}
BENCHMARK(BM_ParseTraceparent);

// A browser-ish request that came through a trusted mesh hop.
const std::vector<std::pair<std::string, std::string>> kTypicalHeaders = {
    {"user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"},
    {"accept", "application/json"},
    {"accept-encoding", "gzip, deflate, br"},
    {"accept-language", "en-GB,en;q=0.9"},
    {"connection", "keep-alive"},
    {"content-type", "application/json"},
    {"x-request-id", "0f8fad5b-d9cb-469f-a165-70867728950e"},
    {"x-correlation-id", "order-checkout-8c1f"},
    {"x-user-id", "alice@example.com"},
    {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
};

void requestPhase(benchmark::State& state, bool trusted) {
  std::string error;
  auto filter = ContextFilter::create(ContextConfig{}, &error);
  IdGenerator ids;
  for (auto _ : state) {
    RequestHead head;
    head.scheme = "http";
    head.headers.fields().reserve(16);
    for (const auto& [name, value] : kTypicalHeaders)
      head.headers.add(name, value);
    RequestContext ctx;
    filter->onRequestHeaders(head, ctx, trusted, ids);
    sanitizeRequestHeaders(head);
    benchmark::DoNotOptimize(head.headers.fields().data());
    benchmark::DoNotOptimize(ctx.traceparent.data());
  }
}

void BM_RequestPhaseTrusted(benchmark::State& state) {
  requestPhase(state, true);
}
BENCHMARK(BM_RequestPhaseTrusted);

void BM_RequestPhaseUntrusted(benchmark::State& state) {
  requestPhase(state, false);
}
BENCHMARK(BM_RequestPhaseUntrusted);

// The same head building, allocation and context construction without the filters, to read
// the filters' own share off the two benchmarks above.
void BM_RequestPhaseBaseline(benchmark::State& state) {
  for (auto _ : state) {
    RequestHead head;
    head.scheme = "http";
    head.headers.fields().reserve(16);
    for (const auto& [name, value] : kTypicalHeaders)
      head.headers.add(name, value);
    RequestContext ctx;
    benchmark::DoNotOptimize(head.headers.fields().data());
    benchmark::DoNotOptimize(&ctx);
  }
}
BENCHMARK(BM_RequestPhaseBaseline);

}  // namespace
}  // namespace viscount
