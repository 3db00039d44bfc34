#include "agent/tools/args.h"

#include <charconv>
#include <cmath>
#include <exception>
#include <nlohmann/json.hpp>
#include <utility>

#include "agent/tools/responses.h"

namespace lai::agent {
namespace {

using nlohmann::json;

Error Invalid(std::string_view message) {
  return Error(ErrorCode::kInvalidArgument, ToolErrorText(message));
}

Error Missing(std::string_view name) {
  return Error(ErrorCode::kInvalidArgument, MissingParameterText(name));
}

std::string Shown(const json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

Error WrongType(std::string_view name, std::string_view expected, const json& value) {
  return Invalid("Invalid value for parameter '" + std::string(name) + "': expected " +
                 std::string(expected) + ", got " + Shown(value) + ".");
}

std::optional<int64_t> ParseInteger(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<int64_t> AsInteger(const json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) {
    double number = value.get<double>();
    if (std::floor(number) == number && std::fabs(number) < 9e15) return int64_t(number);
    return std::nullopt;
  }
  if (value.is_string()) return ParseInteger(value.get_ref<const std::string&>());
  return std::nullopt;
}

std::optional<ToolArgs::LineRange> AsLineRange(const json& item) {
  std::optional<int64_t> start;
  std::optional<int64_t> end;
  if (item.is_string()) {
    std::string_view text = item.get_ref<const std::string&>();
    size_t dash = text.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    start = ParseInteger(text.substr(0, dash));
    end = ParseInteger(text.substr(dash + 1));
  } else if (item.is_array() && item.size() == 2) {
    start = AsInteger(item[0]);
    end = AsInteger(item[1]);
  } else if (item.is_object() && item.contains("start") && item.contains("end")) {
    start = AsInteger(item["start"]);
    end = AsInteger(item["end"]);
  }
  if (!start || !end) return std::nullopt;
  return ToolArgs::LineRange{*start, *end};
}

}  // namespace

ToolArgs::ToolArgs(std::shared_ptr<const json> root, const json* object)
    : root_(std::move(root)), object_(object) {}
ToolArgs::ToolArgs(ToolArgs&&) noexcept = default;
ToolArgs& ToolArgs::operator=(ToolArgs&&) noexcept = default;
ToolArgs::~ToolArgs() = default;

Result<ToolArgs> ToolArgs::Parse(std::string_view arguments_json) {
  std::string_view trimmed = arguments_json;
  while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.front()))) {
    trimmed.remove_prefix(1);
  }
  // Some models send nothing for a tool without required parameters.
  if (trimmed.empty()) trimmed = "{}";
  auto root = std::make_shared<json>();
  try {
    *root = json::parse(trimmed);
  } catch (const std::exception& e) {
    return Invalid(std::string("The tool arguments are not valid JSON (") + e.what() +
                   "). Send the arguments as one JSON object.");
  }
  if (!root->is_object()) {
    return Invalid("The tool arguments must be a JSON object, got " + Shown(*root) + ".");
  }
  const json* object = root.get();
  return ToolArgs(std::move(root), object);
}

const json* ToolArgs::Find(std::string_view name) const {
  auto it = object_->find(name);
  if (it == object_->end() || it->is_null()) return nullptr;
  return &*it;
}

bool ToolArgs::Has(std::string_view name) const { return Find(name) != nullptr; }

Result<std::optional<std::string>> ToolArgs::OptionalString(std::string_view name) const {
  const json* value = Find(name);
  if (value == nullptr) return std::optional<std::string>();
  if (value->is_string()) return std::optional<std::string>(value->get<std::string>());
  if (value->is_number() || value->is_boolean()) return std::optional<std::string>(value->dump());
  return WrongType(name, "a string", *value);
}

Result<std::string> ToolArgs::RequiredString(std::string_view name) const {
  ASSIGN_OR_RETURN(std::optional<std::string> value, OptionalString(name));
  if (!value.has_value()) return Missing(name);
  return std::move(*value);
}

Result<std::optional<int64_t>> ToolArgs::OptionalInteger(std::string_view name) const {
  const json* value = Find(name);
  if (value == nullptr) return std::optional<int64_t>();
  // An empty string is what XML-minded models send for "not given".
  if (value->is_string() && value->get_ref<const std::string&>().empty()) {
    return std::optional<int64_t>();
  }
  std::optional<int64_t> number = AsInteger(*value);
  if (!number) return WrongType(name, "an integer (e.g. 12)", *value);
  return number;
}

Result<int64_t> ToolArgs::RequiredInteger(std::string_view name) const {
  ASSIGN_OR_RETURN(std::optional<int64_t> value, OptionalInteger(name));
  if (!value.has_value()) return Missing(name);
  return *value;
}

Result<bool> ToolArgs::OptionalBool(std::string_view name, bool default_value) const {
  const json* value = Find(name);
  if (value == nullptr) return default_value;
  if (value->is_boolean()) return value->get<bool>();
  if (value->is_number_integer()) {
    int64_t number = value->get<int64_t>();
    if (number == 0 || number == 1) return number == 1;
  }
  if (value->is_string()) {
    std::string text = value->get<std::string>();
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (text == "true" || text == "1" || text == "yes") return true;
    if (text == "false" || text == "0" || text == "no") return false;
    if (text.empty()) return default_value;
  }
  return WrongType(name, "a boolean (true or false)", *value);
}

Result<std::vector<ToolArgs>> ToolArgs::ObjectArray(std::string_view name) const {
  const json* value = Find(name);
  if (value == nullptr) return Missing(name);
  const json* array = value;
  std::shared_ptr<const json> root = root_;
  if (value->is_string()) {
    // Some models double-encode nested arguments.
    auto parsed = std::make_shared<json>();
    try {
      *parsed = json::parse(value->get_ref<const std::string&>());
    } catch (const std::exception&) {
      return WrongType(name, "an array of objects", *value);
    }
    root = parsed;
    array = parsed.get();
  }
  std::vector<ToolArgs> items;
  if (array->is_object()) {
    items.push_back(ToolArgs(root, array));
    return items;
  }
  if (!array->is_array()) return WrongType(name, "an array of objects", *value);
  for (const json& item : *array) {
    if (!item.is_object()) return WrongType(name, "an array of objects", item);
    items.push_back(ToolArgs(root, &item));
  }
  return items;
}

Result<std::vector<ToolArgs::LineRange>> ToolArgs::LineRanges(std::string_view name) const {
  std::vector<LineRange> ranges;
  const json* value = Find(name);
  if (value == nullptr) return ranges;
  constexpr std::string_view kExpected =
      "an array of line ranges like [\"1-50\", \"120-140\"] (1-based, inclusive)";
  if (value->is_string()) {
    std::optional<LineRange> range = AsLineRange(*value);
    if (!range) return WrongType(name, kExpected, *value);
    ranges.push_back(*range);
  } else if (value->is_array()) {
    for (const json& item : *value) {
      std::optional<LineRange> range = AsLineRange(item);
      if (!range) return WrongType(name, kExpected, item);
      ranges.push_back(*range);
    }
  } else {
    return WrongType(name, kExpected, *value);
  }
  for (const LineRange& range : ranges) {
    if (range.start < 1 || range.end < range.start) {
      return Invalid("Invalid line range " + std::to_string(range.start) + "-" +
                     std::to_string(range.end) + " in '" + std::string(name) +
                     "': lines are 1-based and the end must not be before the start.");
    }
  }
  return ranges;
}

Result<workspace::ResolvedPath> ResolveToolPath(ToolContext& context, std::string_view tool,
                                                std::string_view raw_path, PathUse use) {
  Result<workspace::ResolvedPath> resolved =
      context.workspace.Resolve(raw_path, /*allow_outside=*/true);
  if (!resolved.ok()) {
    return Error(ErrorCode::kInvalidArgument,
                 ToolErrorText("Invalid path '" + std::string(raw_path) +
                               "': " + resolved.error().message()));
  }
  if (context.workspace.IsBlocked(*resolved)) {
    return Error(ErrorCode::kPermissionDenied, ToolErrorText(BlockedPathText(raw_path)));
  }
  if (resolved->is_outside) {
    std::string_view verb = use == PathUse::kRead    ? "read"
                            : use == PathUse::kWrite ? "write"
                                                     : "delete";
    std::string detail = std::string(tool) + " wants to " + std::string(verb) + " '" +
                         resolved->absolute + "', outside the workspace " +
                         context.workspace.root();
    ASSIGN_OR_RETURN(ApprovalReply reply, AskApproval(context, ApprovalKind::kOutsideWorkspace,
                                                      tool, resolved->absolute, std::move(detail)));
    (void)reply;
  }
  return resolved;
}

ApprovalKind ActionApprovalKind(const ToolContext& context, const workspace::ResolvedPath& path,
                                ApprovalKind action) {
  if ((action == ApprovalKind::kWrite || action == ApprovalKind::kDelete) && !path.is_outside &&
      context.workspace.IsWriteProtected(path)) {
    return ApprovalKind::kProtected;
  }
  return action;
}

Result<ApprovalReply> AskApproval(ToolContext& context, ApprovalKind kind, std::string_view tool,
                                  std::string_view target, std::string detail) {
  return AskApproval(
      context, ApprovalRequest{kind, std::string(tool), std::string(target), std::move(detail)});
}

Result<ApprovalReply> AskApproval(ToolContext& context, const ApprovalRequest& request) {
  ApprovalReply reply = context.host.Ask(request);
  if (reply.cancelled) return Error(ErrorCode::kCancelled, std::string(ApprovalCancelledText()));
  if (!reply.approved) {
    return Error(ErrorCode::kPermissionDenied,
                 reply.refusal.empty() ? DeniedText(reply.feedback) : reply.refusal);
  }
  return reply;
}

}  // namespace lai::agent
