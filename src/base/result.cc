#include "base/result.h"

#include <cerrno>
#include <cstring>

namespace lai {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kPermissionDenied: return "permission denied";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kIo: return "i/o error";
    case ErrorCode::kProtocol: return "protocol error";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kResourceExhausted: return "resource exhausted";
    case ErrorCode::kInternal: return "internal error";
  }
  return "unknown error";
}

std::string Error::ToString() const {
  std::string out(ErrorCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Error Error::WithContext(std::string_view context) && {
  std::string message(context);
  message += ": ";
  message += message_;
  return Error(code_, std::move(message));
}

Error ErrnoError(std::string_view what, int err) {
  ErrorCode code = ErrorCode::kIo;
  switch (err) {
    case ENOENT: code = ErrorCode::kNotFound; break;
    case EACCES:
    case EPERM: code = ErrorCode::kPermissionDenied; break;
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case EAGAIN:
    case EINTR: code = ErrorCode::kUnavailable; break;
    case ETIMEDOUT: code = ErrorCode::kTimeout; break;
    case EINVAL: code = ErrorCode::kInvalidArgument; break;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case ENOSPC: code = ErrorCode::kResourceExhausted; break;
    default: break;
  }
  std::string message(what);
  message += ": ";
  message += std::strerror(err);
  return Error(code, std::move(message));
}

}  // namespace lai
