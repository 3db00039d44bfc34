// Error, Status and Result<T>: how every fallible operation in lapce-ai reports failure.
// Value types; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace lai {

// Codes say what the caller should do, not what went wrong inside.
enum class ErrorCode : uint8_t {
  kOk = 0,
  kInvalidArgument,   // The input is wrong; retrying the same call will fail again.
  kNotFound,          // The named thing does not exist.
  kPermissionDenied,  // Not allowed for this user or peer.
  kUnavailable,       // Transient: retrying the same call later may succeed.
  kTimeout,           // A deadline passed before the operation finished.
  kIo,                // The operating system refused an I/O operation.
  kProtocol,          // The peer broke the wire protocol; the connection is unusable.
  kCancelled,         // The caller (or shutdown) cancelled the operation.
  kResourceExhausted, // A configured limit was reached (memory, slots, size).
  kInternal,          // A bug or broken invariant in lapce-ai.
};

std::string_view ErrorCodeName(ErrorCode code);

// An error code plus a message naming the operation and its input:
// "open shm 'lapce-ai-3': Permission denied".
class [[nodiscard]] Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "code: message", for logs and CLI output.
  std::string ToString() const;
  // Prefixes context as an error crosses a layer: "connect 'x': " + message.
  Error WithContext(std::string_view context) &&;

 private:
  ErrorCode code_;
  std::string message_;
};

// Error from errno: "<what>: <strerror(err)>" with a code derived from errno.
Error ErrnoError(std::string_view what, int err);

// Success or an Error. Success is a single disengaged optional: building, moving and testing an
// OK Status costs no more than a bool.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design.

  bool ok() const { return !error_.has_value(); }
  // Precondition: !ok().
  const Error& error() const& { return *error_; }
  Error&& error() && { return std::move(*error_); }
  ErrorCode code() const { return ok() ? ErrorCode::kOk : error_->code(); }
  std::string ToString() const { return ok() ? "ok" : error_->ToString(); }

 private:
  std::optional<Error> error_;
};

inline Status OkStatus() { return Status(); }

// A T or an Error, spelled like std::expected.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<T, Error>, "Result<Error> is ambiguous");

 public:
  Result(T value) : storage_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Error error) : storage_(std::in_place_index<1>, std::move(error)) {}  // NOLINT
  template <typename U>
    requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::decay_t<U>, T> &&
             !std::is_same_v<std::decay_t<U>, Error>)
  Result(U&& value) : storage_(std::in_place_index<0>, T(std::forward<U>(value))) {}  // NOLINT

  bool has_value() const { return storage_.index() == 0; }
  bool ok() const { return has_value(); }
  explicit operator bool() const { return has_value(); }

  // Preconditions: has_value() for value(), !has_value() for error().
  T& value() & { return std::get<0>(storage_); }
  const T& value() const& { return std::get<0>(storage_); }
  T&& value() && { return std::get<0>(std::move(storage_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(storage_); }
  Error&& error() && { return std::get<1>(std::move(storage_)); }

  Status status() const& { return has_value() ? Status() : Status(error()); }
  Status status() && { return has_value() ? Status() : Status(std::move(*this).error()); }

 private:
  std::variant<T, Error> storage_;
};

namespace internal {
inline Error TakeError(Status&& s) { return std::move(s).error(); }
template <typename T>
Error TakeError(Result<T>&& r) {
  return std::move(r).error();
}
}  // namespace internal

}  // namespace lai

#define LAI_CONCAT_INNER(a, b) a##b
#define LAI_CONCAT(a, b) LAI_CONCAT_INNER(a, b)

// Returns the error of a Status or Result expression from the enclosing function.
#define RETURN_IF_ERROR(expr)                                        \
  do {                                                               \
    auto lai_status_ = (expr);                                       \
    if (!lai_status_.ok()) return ::lai::internal::TakeError(std::move(lai_status_)); \
  } while (0)

// ASSIGN_OR_RETURN(auto x, MakeX()); declares/assigns x or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  LAI_ASSIGN_OR_RETURN_IMPL(LAI_CONCAT(lai_result_, __LINE__), lhs, expr)
#define LAI_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                  \
  auto tmp = (expr);                                               \
  if (!tmp.has_value()) return std::move(tmp).error();             \
  lhs = std::move(tmp).value()
