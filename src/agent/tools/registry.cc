#include <memory>
#include <vector>

#include "agent/tools/factories.h"
#include "agent/tools/tool.h"

namespace lai::agent {

const std::vector<std::unique_ptr<Tool>>& WorkspaceTools() {
  static const std::vector<std::unique_ptr<Tool>>* tools = [] {
    auto* list = new std::vector<std::unique_ptr<Tool>>();
    list->push_back(MakeReadFileTool());
    list->push_back(MakeWriteToFileTool());
#ifdef LAI_HAS_APPLY_DIFF
    list->push_back(MakeApplyDiffTool());
#endif
    list->push_back(MakeInsertContentTool());
    list->push_back(MakeSearchAndReplaceTool());
    list->push_back(MakeDeleteFileTool());
    list->push_back(MakeListFilesTool());
    list->push_back(MakeSearchFilesTool());
    list->push_back(MakeExecuteCommandTool());
    return list;
  }();
  return *tools;
}

const Tool* FindWorkspaceTool(std::string_view name) {
  for (const std::unique_ptr<Tool>& tool : WorkspaceTools()) {
    if (tool->name() == name) return tool.get();
  }
  return nullptr;
}

}  // namespace lai::agent
