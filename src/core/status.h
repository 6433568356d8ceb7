// Status / StatusOr: errors are values in library code; only the CLI exits.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace vila {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad user input: wrong shape, bad option, malformed JSON field
  kNotFound,         // missing file or tensor
  kDataLoss,         // truncated or corrupt file
  kOutOfRange,       // prompt longer than context, offsets past the end
  kUnimplemented,    // known but not supported yet (e.g. an architecture)
  kResourceExhausted,
  kInternal,
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NotFound: llm/model.safetensors: no such file".
  std::string to_string() const;
  // Prepends context: "loading llm/: " + message.
  Status with_context(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status ok_status() { return {}; }
Status invalid_argument(std::string msg);
Status not_found(std::string msg);
Status data_loss(std::string msg);
Status out_of_range(std::string msg);
Status unimplemented(std::string msg);
Status internal_error(std::string msg);
Status resource_exhausted(std::string msg);

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : status_(status) {}        // NOLINT: implicit by design
  StatusOr(Status&& status) : status_(std::move(status)) {}  // NOLINT
  StatusOr(const T& value) : value_(value) {}                // NOLINT
  StatusOr(T&& value) : value_(std::move(value)) {}          // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace vila

#define VILA_CONCAT_INNER_(a, b) a##b
#define VILA_CONCAT_(a, b) VILA_CONCAT_INNER_(a, b)

#define VILA_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::vila::Status vila_status_ = (expr);        \
    if (!vila_status_.ok()) return vila_status_; \
  } while (0)

#define VILA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

#define VILA_ASSIGN_OR_RETURN(lhs, expr) \
  VILA_ASSIGN_OR_RETURN_IMPL_(VILA_CONCAT_(vila_statusor_, __LINE__), lhs, expr)
