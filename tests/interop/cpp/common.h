// Shared helpers for osqsdk's C++ interop peers: JSON output and a tiny JSON-ish reader
// for expectations. Built against Apache Thrift's C++ runtime, the library osqueryd links.
#pragma once

#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace osqsdk_interop {

inline std::string json_escape(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          // Bytes as \u00XX so that non-UTF-8 output stays exact and parseable.
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

inline std::string json_map(const std::map<std::string, std::string>& m) {
  std::string out = "{";
  bool first = true;
  for (const auto& kv : m) {
    if (!first) out += ",";
    first = false;
    out += json_escape(kv.first) + ":" + json_escape(kv.second);
  }
  return out + "}";
}

inline std::string json_rows(const std::vector<std::map<std::string, std::string>>& rows) {
  std::string out = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i) out += ",";
    out += json_map(rows[i]);
  }
  return out + "]";
}

}  // namespace osqsdk_interop
