#include "proxy/http2/header_arena.h"

namespace viscount::h2 {

void HeaderArena::add(std::string_view name, std::string_view value) {
  spans_.push_back({static_cast<uint32_t>(bytes_.size()), static_cast<uint32_t>(name.size()),
                    static_cast<uint32_t>(value.size())});
  bytes_.append(name);
  bytes_.append(value);
}

void HeaderArena::clear() {
  bytes_.clear();
  spans_.clear();
}

void HeaderArena::release() {
  clear();
  bytes_.shrink_to_fit();
  spans_.shrink_to_fit();
}

HeaderArena::Field HeaderArena::at(size_t index) const {
  const Span& s = spans_[index];
  const std::string_view all(bytes_);
  return {all.substr(s.offset, s.name_size), all.substr(s.offset + s.name_size, s.value_size)};
}

}  // namespace viscount::h2
