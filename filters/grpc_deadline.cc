#include "filters/grpc_deadline.h"

#include <algorithm>

#include "proxy/http/ascii.h"
#include "proxy/http/grpc_wire.h"

namespace viscount {

GrpcDeadline takeGrpcTimeout(HeaderList& headers, Duration budget, bool unbounded_without) {
  GrpcDeadline out;
  std::optional<Duration> client;
  for (HeaderField& f : headers.fields()) {
    if (f.removed || !equalsIgnoreCase(f.name, "grpc-timeout")) continue;
    f.removed = true;
    const auto timeout = parseGrpcTimeout(f.value);
    if (!timeout) {
      out.malformed = true;
      return out;
    }
    client = client ? std::min(*client, *timeout) : *timeout;
  }
  if (!client) {
    if (!unbounded_without) out.budget = budget;
    return out;
  }
  const Duration margin = std::min<Duration>(*client / 50, Duration(20));
  out.budget = std::clamp<Duration>(*client - margin, Duration(1), budget);
  return out;
}

}  // namespace viscount
