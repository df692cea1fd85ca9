#pragma once

// The loader's view of a parsed YAML tree: typed reads that report what is wrong, where, and keep
// going. Each section of the schema is a YamlMap with the keys it allows, so unknown keys,
// duplicate keys and wrong types are caught in one place instead of in every section.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/config_loader.h"

namespace viscount {

class YamlErrors {
 public:
  explicit YamlErrors(std::string file) : file_(std::move(file)) {}

  // `mark` is yaml-cpp's 0-based position; a null mark is reported at 1:1 (the document).
  void add(const YAML::Mark& mark, std::string message);
  bool empty() const { return errors_.empty(); }
  // Sorted by position, so the output reads top to bottom like the file; each error once.
  std::vector<ConfigError> take();

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

// Reads the config's one YAML document into `root` (undefined when the text holds none). A
// second document with content is reported and ignored; false when the text is not YAML.
bool loadSingleDocument(std::string_view yaml, YamlErrors& errors, YAML::Node& root);

// "a map", "a list", "a value" or "nothing", for "expected X, got Y" messages.
const char* describeNode(const YAML::Node& node);

class YamlMap {
 public:
  // A null or absent node reads as an empty map, so a section written as "context:" with nothing
  // under it means "all defaults". Anything else that is not a map is reported.
  YamlMap(YamlErrors& errors, const YAML::Node& node, std::string path,
          std::vector<std::string_view> allowed_keys);

  bool isMap() const { return is_map_; }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  const YAML::Node* value(std::string_view key) const;
  // Where the map starts; for reporting a missing key.
  YAML::Mark mark() const { return mark_; }
  // The value's position, or the key's when the value is empty (yaml-cpp puts an empty value at
  // the start of the next line, which would point the user at the wrong key).
  YAML::Mark valueMark(std::string_view key) const;
  // "listeners[0].timeouts" + "idle" -> "listeners[0].timeouts.idle"
  std::string path(std::string_view key) const;
  const std::string& path() const { return path_; }

  YamlMap child(std::string_view key, std::vector<std::string_view> allowed_keys) const;

  // Reports "<path.key>: <message>" at the key's value.
  void error(std::string_view key, const std::string& message) const;
  void requireKey(std::string_view key) const;

  // Typed reads. An absent key leaves `out` untouched (its default); an invalid value is
  // reported and also leaves `out` untouched. Each returns true when it stored a value.
  bool readString(std::string_view key, std::string& out) const;  // non-empty scalar
  bool readBool(std::string_view key, bool& out) const;
  bool readDuration(std::string_view key, Duration& out, Duration min = Duration::zero()) const;
  bool readSize(std::string_view key, uint64_t& out, uint64_t min = 0) const;
  bool readUnsigned(std::string_view key, uint64_t& out, uint64_t min, uint64_t max) const;
  bool readUnsigned(std::string_view key, uint32_t& out, uint32_t min = 0,
                    uint32_t max = std::numeric_limits<uint32_t>::max()) const;
  // For scalar values that the caller parses itself; reports non-scalars.
  const std::string* scalar(std::string_view key) const;

 private:
  struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
  };

  const Entry* find(std::string_view key) const;
  void addEntries(const YAML::Node& node, const std::vector<std::string_view>& allowed_keys,
                  bool merged, int depth);

  YamlErrors* errors_;
  std::string path_;
  YAML::Mark mark_;
  bool is_map_ = true;
  std::vector<Entry> entries_;
};

}  // namespace viscount
