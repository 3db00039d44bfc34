// One factory per workspace tool; WorkspaceTools() (registry.cc) holds one instance of each.
// Internal to agent/tools.
#pragma once

#include <memory>

#include "agent/tools/tool.h"

namespace lai::agent {

std::unique_ptr<Tool> MakeReadFileTool();
std::unique_ptr<Tool> MakeWriteToFileTool();
std::unique_ptr<Tool> MakeApplyDiffTool();
std::unique_ptr<Tool> MakeInsertContentTool();
std::unique_ptr<Tool> MakeSearchAndReplaceTool();
std::unique_ptr<Tool> MakeDeleteFileTool();
std::unique_ptr<Tool> MakeListFilesTool();
std::unique_ptr<Tool> MakeSearchFilesTool();
std::unique_ptr<Tool> MakeExecuteCommandTool();

}  // namespace lai::agent
