#pragma once

// Builder for the Prometheus text exposition format, version 0.0.4: HELP and TYPE lines, samples
// with escaped label values, and histograms with cumulative buckets.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "telemetry/metric_cells.h"

namespace viscount {

struct PromLabel {
  std::string_view name;
  std::string_view value;
};

class PrometheusText {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);

  void sample(std::string_view name, std::initializer_list<PromLabel> labels, uint64_t value);
  void sample(std::string_view name, std::initializer_list<PromLabel> labels, int64_t value);
  void sample(std::string_view name, std::initializer_list<PromLabel> labels, double value);

  // `name`_bucket (cumulative, with le), `name`_sum and `name`_count.
  void histogram(std::string_view name, std::initializer_list<PromLabel> labels,
                 const Histogram::Totals& totals);

  std::string take() { return std::move(out_); }

 private:
  void series(std::string_view name, std::string_view suffix,
              std::initializer_list<PromLabel> labels, PromLabel extra = {});
  void value(double v);

  std::string out_;
};

}  // namespace viscount
