#include "filters/request_phase.h"

#include <charconv>

#include "filters/header_name_table.h"
#include "filters/header_sanitizer.h"

namespace viscount {

namespace {

// Removes every copy of the deadline header, and its underscore look-alikes, in one pass over
// the headers; a trusted client's smaller budget is honoured.
Duration takeDeadline(HeaderList& headers, std::string_view name, bool trusted, Duration budget) {
  if (name.empty()) return budget;
  if (trusted) {
    if (const HeaderField* f = headers.find(name)) {
      uint64_t ms = 0;
      const char* end = f->value.data() + f->value.size();
      const auto [ptr, ec] = std::from_chars(f->value.data(), end, ms);
      // Compared as integers: Duration(ms) of 2^63 or more would be negative.
      if (ec == std::errc() && ptr == end && ms > 0 && ms < static_cast<uint64_t>(budget.count())) {
        budget = Duration(static_cast<Duration::rep>(ms));
      }
    }
  }
  for (HeaderField& f : headers.fields()) {
    if (equalsIgnoreCase(f.name, name) || isUnderscoreLookalike(f.name, name)) f.removed = true;
  }
  return budget;
}

}  // namespace

Duration filterRequestHead(RequestHead& head, RequestContext& ctx, IdGenerator& ids,
                           const RequestFilterInput& input) {
  input.context.onRequestHeaders(head, ctx, input.trusted, ids, input.certificate_user);
  sanitizeRequestHeaders(head);
  setForwardedHeaders(head, input.client_ip, input.trusted, input.context.config().forwarded);
  const Duration budget =
      takeDeadline(head.headers, input.deadline_header, input.trusted, input.budget);
  // An HTTP/1.0 client may send no Host and any client an empty one, but an HTTP/1.1 request
  // must carry a Host: like nginx's default, it then names the upstream itself.
  if (head.authority.empty()) head.authority = input.upstream_authority;
  return budget;
}

}  // namespace viscount
