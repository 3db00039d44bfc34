// Tool arguments as models send them: one JSON object parsed once, typed getters that accept the
// usual sloppiness ("12" for 12, "true" for true), and the path checks every tool shares
// (resolve, ignore-blocked, outside the workspace, write-protected, approval). Thread-compatible.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/tools/tool.h"
#include "base/result.h"

namespace lai::agent {

// Every Error returned below has code kInvalidArgument and a message that is the complete text
// for the model (missing parameter wording, or a toolError naming the parameter and what was
// expected).
class ToolArgs {
 public:
  // Errors: not JSON, or not a JSON object.
  static Result<ToolArgs> Parse(std::string_view arguments_json);

  // True when the key is present and not null.
  bool Has(std::string_view name) const;

  Result<std::string> RequiredString(std::string_view name) const;
  // Numbers and booleans are turned into their text; nullopt when absent or null.
  Result<std::optional<std::string>> OptionalString(std::string_view name) const;
  // Accepts 12, 12.0 and "12".
  Result<int64_t> RequiredInteger(std::string_view name) const;
  Result<std::optional<int64_t>> OptionalInteger(std::string_view name) const;
  // Accepts true/false, "true"/"false" (any case), 1/0.
  Result<bool> OptionalBool(std::string_view name, bool default_value) const;
  // An array of objects (also accepted: one object, or a JSON string holding the array).
  Result<std::vector<ToolArgs>> ObjectArray(std::string_view name) const;

  struct LineRange {
    int64_t start = 0;  // 1-based, inclusive.
    int64_t end = 0;
  };
  // ["1-50", ...], [[1, 50], ...] or [{"start": 1, "end": 50}]; absent or null = empty.
  Result<std::vector<LineRange>> LineRanges(std::string_view name) const;

  ToolArgs(ToolArgs&&) noexcept;
  ToolArgs& operator=(ToolArgs&&) noexcept;
  ~ToolArgs();

 private:
  ToolArgs(std::shared_ptr<const nlohmann::json> root, const nlohmann::json* object);
  const nlohmann::json* Find(std::string_view name) const;

  std::shared_ptr<const nlohmann::json> root_;  // Shared by the ToolArgs of nested objects.
  const nlohmann::json* object_;                // Points into *root_.
};

// How a tool is about to use a path.
enum class PathUse { kRead, kWrite, kDelete };

// Resolve → blocked by .kilocodeignore (refused) → outside the workspace (asks kOutsideWorkspace)
// (write-protected paths are not refused: the tool asks its action approval as kProtected, see
// ActionApprovalKind). Errors carry the text for the model:
// kInvalidArgument (bad path), kPermissionDenied (blocked, or the user denied outside access).
Result<workspace::ResolvedPath> ResolveToolPath(ToolContext& context, std::string_view tool,
                                                std::string_view raw_path, PathUse use);

// The kind to ask for an action on `path`: kProtected for writes/deletes of protected paths.
ApprovalKind ActionApprovalKind(const ToolContext& context, const workspace::ResolvedPath& path,
                                ApprovalKind action);

// The approval reply, or the model's text when denied.
Result<ApprovalReply> AskApproval(ToolContext& context, ApprovalKind kind, std::string_view tool,
                                  std::string_view target, std::string detail);
Result<ApprovalReply> AskApproval(ToolContext& context, const ApprovalRequest& request);

// The path as the model should see it: relative to the root, or absolute when outside.
inline const std::string& DisplayPath(const workspace::ResolvedPath& path) {
  return path.relative.empty() ? path.absolute : path.relative;
}

// A ToolResult carrying an error's message (already the model's text).
inline ToolResult ErrorResult(const Error& error) { return ToolResult{true, error.message()}; }

}  // namespace lai::agent
