// Levelled logging routed through a settable sink. Library code never prints directly.
#pragma once

#include <functional>
#include <string>

namespace vila {

enum class LogLevel { kDebug = 0, kInfo, kWarn, kError, kNone };

using LogSink = std::function<void(LogLevel, const std::string&)>;

void log_set_level(LogLevel level);
LogLevel log_level();
// Replaces the sink (default: stderr with a "[vila W] " prefix). Pass nullptr to restore it.
void log_set_sink(LogSink sink);
void log_message(LogLevel level, const std::string& message);

}  // namespace vila

#define VILA_LOG_DEBUG(msg)                                 \
  do {                                                      \
    if (::vila::log_level() <= ::vila::LogLevel::kDebug)    \
      ::vila::log_message(::vila::LogLevel::kDebug, (msg)); \
  } while (0)
#define VILA_LOG_INFO(msg) ::vila::log_message(::vila::LogLevel::kInfo, (msg))
#define VILA_LOG_WARN(msg) ::vila::log_message(::vila::LogLevel::kWarn, (msg))
#define VILA_LOG_ERROR(msg) ::vila::log_message(::vila::LogLevel::kError, (msg))
