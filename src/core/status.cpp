#include "core/status.h"

namespace vila {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case StatusCode::kNotFound:
      return "NotFound";
    case StatusCode::kDataLoss:
      return "DataLoss";
    case StatusCode::kOutOfRange:
      return "OutOfRange";
    case StatusCode::kUnimplemented:
      return "Unimplemented";
    case StatusCode::kResourceExhausted:
      return "ResourceExhausted";
    case StatusCode::kInternal:
      return "Internal";
  }
  return "Unknown";
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  return std::string(status_code_name(code_)) + ": " + message_;
}

Status Status::with_context(const std::string& context) const {
  if (ok()) return *this;
  return {code_, context + ": " + message_};
}

Status invalid_argument(std::string msg) { return {StatusCode::kInvalidArgument, std::move(msg)}; }
Status not_found(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
Status data_loss(std::string msg) { return {StatusCode::kDataLoss, std::move(msg)}; }
Status out_of_range(std::string msg) { return {StatusCode::kOutOfRange, std::move(msg)}; }
Status unimplemented(std::string msg) { return {StatusCode::kUnimplemented, std::move(msg)}; }
Status internal_error(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }
Status resource_exhausted(std::string msg) {
  return {StatusCode::kResourceExhausted, std::move(msg)};
}

}  // namespace vila
