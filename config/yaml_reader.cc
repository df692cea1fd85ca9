#include "config/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "config/duration.h"
#include "proxy/http/ascii.h"

namespace viscount {
namespace {

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string unknownKeyMessage(const std::string& key, const std::string& path,
                              const std::vector<std::string_view>& allowed) {
  std::string message = "unknown key '" + key + "'";
  if (!path.empty()) message += " in " + path;
  std::string_view closest;
  size_t best = 3;  // beyond two edits a suggestion is more confusing than helpful
  for (const auto candidate : allowed) {
    const size_t distance = editDistance(key, candidate);
    if (distance < best) {
      best = distance;
      closest = candidate;
    }
  }
  if (!closest.empty()) return message + "; did you mean '" + std::string(closest) + "'?";
  message += " (expected one of: ";
  for (size_t i = 0; i < allowed.size(); ++i) {
    if (i > 0) message += ", ";
    message += allowed[i];
  }
  return message + ")";
}

// RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
bool isUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t more = 0;
    unsigned char low = 0x80;  // the second byte's range, narrowed where the RFC says
    unsigned char high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      more = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      more = 2;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      more = 3;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    if (s.size() - i <= more) return false;
    for (size_t k = 1; k <= more; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? low : 0x80) || b > (k == 1 ? high : 0xBF)) return false;
    }
    i += more + 1;
  }
  return true;
}

// Where a document starts and where its first node is, if it has one.
class DocumentEvents final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    start = mark;
    has_node = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}

  YAML::Mark start;
  YAML::Mark first_node;
  bool has_node = false;

 private:
  void node(const YAML::Mark& mark) {
    if (!has_node) first_node = mark;
    has_node = true;
  }
};

}  // namespace

bool loadSingleDocument(std::string_view yaml, YamlErrors& errors, YAML::Node& root) {
  const std::string text(yaml);
  try {
    // yaml-cpp 0.7 reads some malformed text (a lone ',') as an endless run of empty documents
    // that all start at the same place, so YAML::LoadAll would fill memory and never return.
    // The documents are walked one at a time first, stopping where the parser stops moving.
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    DocumentEvents events;
    int previous_start = -1;
    for (size_t index = 0; parser.HandleNextDocument(events); ++index) {
      if (events.start.pos <= previous_start) {
        const auto at = static_cast<size_t>(events.start.pos);
        const char c = at < text.size() ? text[at] : ' ';
        errors.add(events.start, c > ' ' && c < 0x7f
                                     ? "invalid YAML: unexpected '" + std::string(1, c) + "'"
                                     : std::string("invalid YAML: cannot read past this point"));
        return false;
      }
      previous_start = events.start.pos;
      // A trailing "---" is harmless; a second document with content would be silently ignored.
      if (index > 0 && events.has_node) {
        errors.add(events.first_node, "only one YAML document is allowed in a config file");
      }
    }
    root = YAML::Load(text);  // the first document, now known to end
  } catch (const YAML::Exception& e) {
    errors.add(e.mark, "invalid YAML: " + e.msg);
    return false;
  }
  return true;
}

void YamlErrors::add(const YAML::Mark& mark, std::string message) {
  ConfigError error;
  error.file = file_;
  error.line = mark.is_null() ? 1 : mark.line + 1;
  error.column = mark.is_null() ? 1 : mark.column + 1;
  error.message = std::move(message);
  errors_.push_back(std::move(error));
}

std::vector<ConfigError> YamlErrors::take() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const auto& a, const auto& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  // A node read twice (through an alias) would report its mistake twice, word for word. Errors
  // at one position are next to each other now.
  std::vector<ConfigError> once;
  for (ConfigError& e : errors_) {
    bool seen = false;
    for (auto o = once.rbegin(); o != once.rend() && o->line == e.line && o->column == e.column;
         ++o) {
      seen = seen || o->message == e.message;
    }
    if (!seen) once.push_back(std::move(e));
  }
  errors_.clear();
  return once;
}

const char* describeNode(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a value";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "nothing";
  }
  return "nothing";
}

YamlMap::YamlMap(YamlErrors& errors, const YAML::Node& node, std::string path,
                 std::vector<std::string_view> allowed_keys)
    : errors_(&errors), path_(std::move(path)), mark_(node.Mark()) {
  if (!node.IsDefined() || node.IsNull()) return;
  if (!node.IsMap()) {
    is_map_ = false;
    errors.add(mark_, (path_.empty() ? std::string("config") : path_) + ": expected a map, got " +
                          describeNode(node));
    return;
  }
  addEntries(node, allowed_keys, /*merged=*/false, 0);
}

void YamlMap::addEntries(const YAML::Node& node, const std::vector<std::string_view>& allowed_keys,
                         bool merged, int depth) {
  std::vector<YAML::Node> merge_sources;
  for (const auto& pair : node) {
    const YAML::Node key = pair.first;
    if (!key.IsScalar()) {
      errors_->add(key.Mark(), "keys must be plain names, got " + std::string(describeNode(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    if (name == "<<" && key.Tag() != "!") {
      merge_sources.push_back(pair.second);
      continue;
    }
    if (std::find(allowed_keys.begin(), allowed_keys.end(), name) == allowed_keys.end()) {
      errors_->add(key.Mark(), unknownKeyMessage(name, path_, allowed_keys));
      continue;
    }
    if (const Entry* first = find(name)) {
      // A merged-in key is a default that the map's own keys override. Among the map's own keys,
      // yaml-cpp keeps both copies, and silently taking either would hide a mistake.
      if (!merged) {
        errors_->add(key.Mark(), "duplicate key '" + path(name) + "' (first at line " +
                                     std::to_string(first->key_node.Mark().line + 1) + ")");
      }
      continue;
    }
    entries_.push_back(Entry{name, key, pair.second});
  }

  // YAML merge keys ("<<: *defaults"), which yaml-cpp leaves to the application. They are read
  // after the map's own keys so those win, and in order so that earlier sources win.
  constexpr int kMaxMergeDepth = 8;
  for (const auto& source : merge_sources) {
    std::vector<YAML::Node> maps;
    if (source.IsMap()) {
      maps.push_back(source);
    } else if (source.IsSequence()) {
      for (const auto& item : source) {
        maps.push_back(item);
      }
    }
    for (const auto& map : maps) {
      if (!map.IsMap() || depth >= kMaxMergeDepth) {
        errors_->add(map.Mark(), (path_.empty() ? std::string("config") : path_) +
                                     ": '<<' needs a map or a list of maps");
        continue;
      }
      addEntries(map, allowed_keys, /*merged=*/true, depth + 1);
    }
    if (maps.empty()) {
      errors_->add(source.Mark(), (path_.empty() ? std::string("config") : path_) +
                                      ": '<<' needs a map or a list of maps");
    }
  }
}

const YamlMap::Entry* YamlMap::find(std::string_view key) const {
  for (const auto& entry : entries_) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

const YAML::Node* YamlMap::value(std::string_view key) const {
  const Entry* entry = find(key);
  return entry != nullptr ? &entry->value : nullptr;
}

YAML::Mark YamlMap::valueMark(std::string_view key) const {
  const Entry* entry = find(key);
  if (entry == nullptr) return mark_;
  if (entry->value.IsNull() || entry->value.Mark().is_null()) return entry->key_node.Mark();
  return entry->value.Mark();
}

std::string YamlMap::path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

YamlMap YamlMap::child(std::string_view key, std::vector<std::string_view> allowed_keys) const {
  const Entry* entry = find(key);
  YamlMap map(*errors_, entry != nullptr ? entry->value : YAML::Node(), path(key),
              std::move(allowed_keys));
  // An absent or empty section has no position of its own; its key (or its parent) stands in.
  if (map.mark_.is_null() || (entry != nullptr && entry->value.IsNull())) {
    map.mark_ = entry != nullptr ? entry->key_node.Mark() : mark_;
  }
  return map;
}

void YamlMap::error(std::string_view key, const std::string& message) const {
  errors_->add(valueMark(key), path(key) + ": " + message);
}

void YamlMap::requireKey(std::string_view key) const {
  if (!is_map_ || has(key)) return;
  errors_->add(mark_, (path_.empty() ? std::string("config") : path_) + ": missing required key '" +
                          std::string(key) + "'");
}

const std::string* YamlMap::scalar(std::string_view key) const {
  const Entry* entry = find(key);
  if (entry == nullptr) return nullptr;
  if (!entry->value.IsScalar()) {
    error(key, std::string("expected a value, got ") + describeNode(entry->value));
    return nullptr;
  }
  // YAML is Unicode text. yaml-cpp passes other bytes through in plain scalars but turns them
  // into U+FFFD in quoted ones, so such a value would not survive --print-config.
  if (!isUtf8(entry->value.Scalar())) {
    error(key, "not valid UTF-8");
    return nullptr;
  }
  return &entry->value.Scalar();
}

bool YamlMap::readString(std::string_view key, std::string& out) const {
  const std::string* text = scalar(key);
  if (text == nullptr) return false;
  if (text->empty()) {
    error(key, "must not be empty");
    return false;
  }
  out = *text;
  return true;
}

bool YamlMap::readBool(std::string_view key, bool& out) const {
  const std::string* text = scalar(key);
  if (text == nullptr) return false;
  const std::string lower = toLowerAscii(*text);
  // YAML 1.1 spellings too: Kubernetes manifests and Helm values commonly use them.
  if (lower == "true" || lower == "yes" || lower == "on") {
    out = true;
    return true;
  }
  if (lower == "false" || lower == "no" || lower == "off") {
    out = false;
    return true;
  }
  error(key, "expected true or false, got '" + *text + "'");
  return false;
}

bool YamlMap::readDuration(std::string_view key, Duration& out, Duration min) const {
  const std::string* text = scalar(key);
  if (text == nullptr) return false;
  std::string why;
  const auto duration = parseDuration(*text, &why);
  if (!duration) {
    error(key, "invalid duration '" + *text + "': " + why);
    return false;
  }
  if (*duration < min) {
    error(key, "must be at least " + formatDuration(min));
    return false;
  }
  out = *duration;
  return true;
}

bool YamlMap::readSize(std::string_view key, uint64_t& out, uint64_t min) const {
  const std::string* text = scalar(key);
  if (text == nullptr) return false;
  std::string why;
  const auto size = parseSize(*text, &why);
  if (!size) {
    error(key, "invalid size '" + *text + "': " + why);
    return false;
  }
  if (*size < min) {
    error(key, "must be at least " + formatSize(min));
    return false;
  }
  out = *size;
  return true;
}

bool YamlMap::readUnsigned(std::string_view key, uint64_t& out, uint64_t min, uint64_t max) const {
  const std::string* text = scalar(key);
  if (text == nullptr) return false;
  const auto value = parseUnsigned(*text);
  if (!value || *value < min || *value > max) {
    error(key, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max) +
                   ", got '" + *text + "'");
    return false;
  }
  out = *value;
  return true;
}

bool YamlMap::readUnsigned(std::string_view key, uint32_t& out, uint32_t min, uint32_t max) const {
  uint64_t value = 0;
  if (!readUnsigned(key, value, min, max)) return false;
  out = static_cast<uint32_t>(value);
  return true;
}

}  // namespace viscount
