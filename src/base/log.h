// Process-wide logging on spdlog: Init() installs the default logger, then code logs with
// spdlog::info(...) etc. Thread-safe (spdlog's default logger is too).
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "base/result.h"

namespace lai::log {

// The accepted level names, most to least verbose; "off" disables logging.
inline constexpr std::array<std::string_view, 6> kLevelNames = {"trace", "debug", "info",
                                                                "warn",  "error", "off"};

struct Options {
  std::string level = "info";  // One of kLevelNames.
  std::string file;            // Empty = stderr only.
};

// Replaces spdlog's default logger with one that writes to stderr (never stdout: stdout is
// reserved for protocols) and, when options.file is set, also appends to that file. A missing
// file is created with mode 0600 and missing parent directories with mode 0700; an existing
// file keeps its mode. Messages at info and above are flushed to the file immediately.
// Errors: kInvalidArgument for an unknown level (the message lists the valid ones); errno-derived
// codes when the directory or file cannot be created or opened. On error the previous default
// logger stays installed.
Status Init(const Options& options);

// Whether colour and cursor movement are welcome on a terminal: not with NO_COLOR set to anything
// but "" (as no-color.org says), nor on a terminal that declares itself dumb (Emacs' shell and
// compile buffers). Log lines on stderr follow it too.
bool WantsColor();

// Names the calling thread ("lai-http", …) for `top -H`, perf, gdb and /proc; Linux keeps the
// first 15 bytes.
void NameThisThread(std::string_view name);

// A thread that many sessions share (the providers' HTTP I/O thread) marks itself: code that
// could wait there for one slow peer (an editor's channel) gives that peer up instead.
void MarkThisThreadShared(bool is_shared = true);
bool IsThisThreadShared();

}  // namespace lai::log
