#include "core/logging.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace vila {

namespace {
std::atomic<LogLevel> g_level{LogLevel::kWarn};
std::mutex g_mutex;
LogSink g_sink;

void default_sink(LogLevel level, const std::string& message) {
  static constexpr char kTags[] = {'D', 'I', 'W', 'E'};
  std::fprintf(stderr, "[vila %c] %s\n", kTags[static_cast<int>(level)], message.c_str());
}
}  // namespace

void log_set_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

void log_set_sink(LogSink sink) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_sink = std::move(sink);
}

void log_message(LogLevel level, const std::string& message) {
  if (level < g_level || level == LogLevel::kNone) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_sink) {
    g_sink(level, message);
  } else {
    default_sink(level, message);
  }
}

}  // namespace vila
