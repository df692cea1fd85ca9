#pragma once

// Redaction of secrets carried in a request target's query (`?token=…`, `?api_key=…`) before the
// target is written to the access log. Only the log's copy changes: the upstream always gets the
// target the client sent.

#include <string>
#include <string_view>
#include <vector>

namespace viscount {

class QueryRedaction {
 public:
  // `names` are lowercase parameter names; empty turns redaction off.
  explicit QueryRedaction(std::vector<std::string> names) : names_(std::move(names)) {}

  // When `target`'s query holds a listed parameter with a value, writes the target with each such
  // value replaced by REDACTED into `out` and returns true; otherwise returns false and leaves
  // `out` alone (the common case costs one scan for '?' and no allocation).
  //
  // A name matches after percent-decoding, '+' as space and ASCII case folding (`%74oken`,
  // `TOKEN`), the way frameworks read it. Parameters are split on '&' and ';' (some frameworks take
  // either), so a value can never hide behind the other separator. Everything after the name's
  // first '=' is the value, up to the next separator; a name without '=' carries no value.
  bool redact(std::string_view target, std::string& out) const;

  bool enabled() const { return !names_.empty(); }

 private:
  bool listed(std::string_view raw_name) const;

  std::vector<std::string> names_;
};

}  // namespace viscount
