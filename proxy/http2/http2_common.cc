#include "proxy/http2/http2_common.h"

#include <charconv>

#include "proxy/http/ascii.h"

namespace viscount::h2 {

bool isConnectionSpecific(std::string_view name, std::string_view value) {
  if (equalsIgnoreCase(name, "te")) return !equalsIgnoreCase(value, "trailers");
  return equalsIgnoreCase(name, "connection") || equalsIgnoreCase(name, "keep-alive") ||
         equalsIgnoreCase(name, "proxy-connection") ||
         equalsIgnoreCase(name, "transfer-encoding") || equalsIgnoreCase(name, "upgrade") ||
         equalsIgnoreCase(name, "http2-settings");
}

void HeaderBlock::clear() {
  fields_.clear();
  lowered_.clear();
  nv_.clear();
}

void HeaderBlock::addLower(std::string_view name, std::string_view value) {
  fields_.push_back({0, name, value, false});
}

void HeaderBlock::add(std::string_view name, std::string_view value) {
  if (isConnectionSpecific(name, value)) return;
  bool lower = true;
  for (char c : name)
    lower = lower && !(c >= 'A' && c <= 'Z');
  if (lower) {
    addLower(name, value);
    return;
  }
  const size_t off = lowered_.size();
  for (char c : name)
    lowered_.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
  fields_.push_back({off, name, value, true});
}

void HeaderBlock::addAll(const HeaderList& headers) {
  for (const HeaderField& f : headers.fields()) {
    if (!f.removed) add(f.name, f.value);
  }
}

void HeaderBlock::addContentLength(uint64_t length) {
  const auto r = std::to_chars(length_, length_ + sizeof length_, length);
  addLower("content-length", std::string_view(length_, static_cast<size_t>(r.ptr - length_)));
}

const nghttp2_nv* HeaderBlock::data() {
  nv_.clear();
  nv_.reserve(fields_.size());
  for (const Field& f : fields_) {
    const char* name = f.name_owned ? lowered_.data() + f.name_off : f.name.data();
    nghttp2_nv nv;
    nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name));
    nv.namelen = f.name.size();
    nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data()));
    nv.valuelen = f.value.size();
    nv.flags = NGHTTP2_NV_FLAG_NONE;
    nv_.push_back(nv);
  }
  return nv_.data();
}

nghttp2_option* newSessionOptions(const SessionLimits& limits, bool server) {
  nghttp2_option* option = nullptr;
  if (nghttp2_option_new(&option) != 0) return nullptr;
  // Window updates are sent by the codec as the other side consumes a body (backpressure).
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_max_send_header_block_length(
      option, limits.max_send_header_block_bytes != 0 ? limits.max_send_header_block_bytes
                                                      : limits.max_header_list_bytes + 4096);
  // Each frame nghttp2 must answer (SETTINGS ACK, PING ACK, RST_STREAM) is queued; a peer that
  // sends them faster than it reads our output would grow the queue without this cap.
  nghttp2_option_set_max_outbound_ack(option, 1000);
  nghttp2_option_set_max_settings(option, 32);
  // A header block split into more CONTINUATION frames than this closes the connection.
  nghttp2_option_set_max_continuations(option, 8);
  if (server) {
    // nghttp2 counts every RST_STREAM frame, also those for streams already closed, which a
    // well-behaved client may send by the dozen (see ResetBudget, the defence that counts
    // resets of open streams). This only caps a flood of the frames themselves.
    nghttp2_option_set_stream_reset_rate_limit(option, 10000, 1000);
    nghttp2_option_set_max_deflate_dynamic_table_size(option, 4096);
  }
  return option;
}

bool pumpOutput(nghttp2_session* session, Buffer& out, size_t cap) {
  while (out.size() < cap) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session, &data);
    if (n < 0) return false;
    if (n == 0) break;
    out.append(data, static_cast<size_t>(n));
  }
  return true;
}

}  // namespace viscount::h2
