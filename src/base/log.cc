#include "base/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace lai::log {
namespace {

constexpr spdlog::level::level_enum kSpdlogLevels[] = {
    spdlog::level::trace, spdlog::level::debug, spdlog::level::info,
    spdlog::level::warn,  spdlog::level::err,   spdlog::level::off,
};
static_assert(std::size(kSpdlogLevels) == kLevelNames.size());

std::optional<spdlog::level::level_enum> ParseLevel(std::string_view name) {
  for (size_t i = 0; i < kLevelNames.size(); ++i) {
    if (kLevelNames[i] == name) return kSpdlogLevels[i];
  }
  return std::nullopt;
}

std::string LevelList() {
  std::string out;
  for (std::string_view name : kLevelNames) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// mkdir -p for the directories above `file`; only directories created here get mode 0700.
Status CreateParentDirectories(const std::string& file) {
  size_t end = file.rfind('/');
  if (end == std::string::npos || end == 0) return OkStatus();
  std::string parent = file.substr(0, end);
  // Walk forward so each component exists before its child is created.
  for (size_t pos = 1; pos <= parent.size(); ++pos) {
    if (pos != parent.size() && parent[pos] != '/') continue;
    std::string prefix = parent.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) == 0 || errno == EEXIST) continue;
    return ErrnoError("create log directory '" + prefix + "'", errno);
  }
  return OkStatus();
}

// Creates the file with mode 0600 if it is missing, so the sink (which uses fopen and the umask)
// never creates it with wider permissions.
Status CreateLogFile(const std::string& file) {
  RETURN_IF_ERROR(CreateParentDirectories(file));
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("open log file '" + file + "'", errno);
  ::close(fd);
  return OkStatus();
}

}  // namespace

bool WantsColor() {
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  return (no_color == nullptr || *no_color == '\0') &&
         (term == nullptr || std::string_view(term) != "dumb");
}

Status Init(const Options& options) {
  std::optional<spdlog::level::level_enum> level = ParseLevel(options.level);
  if (!level) {
    return Error(ErrorCode::kInvalidArgument,
                 "log level '" + options.level + "': expected one of " + LevelList());
  }
  if (!options.file.empty()) RETURN_IF_ERROR(CreateLogFile(options.file));
  // spdlog reports failures by throwing spdlog::spdlog_ex; keep them inside this adapter.
  try {
    std::vector<spdlog::sink_ptr> sinks;
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>(
        WantsColor() ? spdlog::color_mode::automatic : spdlog::color_mode::never));
    if (!options.file.empty()) {
      sinks.push_back(
          std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file, /*truncate=*/false));
    }
    auto logger = std::make_shared<spdlog::logger>("lapce-ai", sinks.begin(), sinks.end());
    logger->set_level(*level);
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(std::move(logger));
  } catch (const std::exception& e) {
    return Error(ErrorCode::kIo, std::string("install logger: ") + e.what());
  }
  return OkStatus();
}

void NameThisThread(std::string_view name) {
  char truncated[16] = {};
  name.copy(truncated, sizeof(truncated) - 1);
  ::pthread_setname_np(::pthread_self(), truncated);
}

namespace {
thread_local bool t_is_shared = false;
}  // namespace

void MarkThisThreadShared(bool is_shared) { t_is_shared = is_shared; }
bool IsThisThreadShared() { return t_is_shared; }

}  // namespace lai::log
