#include "telemetry/prometheus_text.h"

#include <cmath>
#include <iterator>

#include <fmt/format.h>

#include "telemetry/append_number.h"

namespace viscount {
namespace {

void appendLabelValue(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\':
        out.append("\\\\");
        break;
      case '"':
        out.append("\\\"");
        break;
      case '\n':
        out.append("\\n");
        break;
      default:
        out.push_back(c);
    }
  }
}

// HELP text escapes only backslash and newline.
void appendHelp(std::string& out, std::string_view help) {
  for (const char c : help) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace

void PrometheusText::family(std::string_view name, std::string_view type, std::string_view help) {
  out_.append("# HELP ").append(name).push_back(' ');
  appendHelp(out_, help);
  out_.append("\n# TYPE ").append(name).push_back(' ');
  out_.append(type).push_back('\n');
}

void PrometheusText::series(std::string_view name, std::string_view suffix,
                            std::initializer_list<PromLabel> labels, PromLabel extra) {
  out_.append(name).append(suffix);
  bool first = true;
  const auto label = [&](const PromLabel& l) {
    out_.push_back(first ? '{' : ',');
    first = false;
    out_.append(l.name).append("=\"");
    appendLabelValue(out_, l.value);
    out_.push_back('"');
  };
  for (const PromLabel& l : labels)
    label(l);
  if (!extra.name.empty()) label(extra);
  if (!first) out_.push_back('}');
  out_.push_back(' ');
}

void PrometheusText::value(double v) {
  if (std::isnan(v)) {
    out_.append("NaN");
  } else if (std::isinf(v)) {
    out_.append(v > 0 ? "+Inf" : "-Inf");
  } else {
    fmt::format_to(std::back_inserter(out_), "{}", v);
  }
}

void PrometheusText::sample(std::string_view name, std::initializer_list<PromLabel> labels,
                            uint64_t v) {
  series(name, {}, labels);
  appendInt(out_, v);
  out_.push_back('\n');
}

void PrometheusText::sample(std::string_view name, std::initializer_list<PromLabel> labels,
                            int64_t v) {
  series(name, {}, labels);
  appendInt(out_, v);
  out_.push_back('\n');
}

void PrometheusText::sample(std::string_view name, std::initializer_list<PromLabel> labels,
                            double v) {
  series(name, {}, labels);
  value(v);
  out_.push_back('\n');
}

void PrometheusText::histogram(std::string_view name, std::initializer_list<PromLabel> labels,
                               const Histogram::Totals& totals) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < Histogram::kBuckets; ++i) {
    cumulative += totals.counts[i];
    const std::string bound = i < kLatencyBucketBounds.size()
                                  ? fmt::format("{}", kLatencyBucketBounds[i])
                                  : std::string("+Inf");
    series(name, "_bucket", labels, {"le", bound});
    appendInt(out_, cumulative);
    out_.push_back('\n');
  }
  series(name, "_sum", labels);
  value(totals.sum);
  out_.push_back('\n');
  // The count is the +Inf bucket by definition; deriving it keeps the two equal even while
  // observations land during render.
  series(name, "_count", labels);
  appendInt(out_, cumulative);
  out_.push_back('\n');
}

}  // namespace viscount
