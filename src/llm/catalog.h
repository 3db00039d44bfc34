// The model catalog: context window, output limit, capabilities and prices of the main models of
// each provider, overridable from config; and the cost of a usage. Immutable; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llm/types.h"

namespace lai::llm {

struct ModelInfo {
  std::string provider;  // "openai", "anthropic", "gemini", "ollama", "openrouter"
  std::string id;        // As the provider's API names it.
  int64_t context_window = 0;
  int64_t max_output_tokens = 0;
  bool supports_tools = false;
  bool supports_images = false;
  bool supports_reasoning = false;
  bool supports_prompt_cache = false;
  // USD per million tokens.
  double input_price = 0;
  double output_price = 0;
  double cache_write_price = 0;
  double cache_read_price = 0;
};

// The context window taken for a model the catalog does not know.
inline constexpr int64_t kAssumedContextWindow = 128000;
// For an Ollama model it does not know: what Ollama is told to give it (num_ctx; its own default
// of a few thousand tokens drops the start of an agent's prompt), and what a local machine
// holds. [models."ollama/<model>"] context_window says otherwise.
inline constexpr int64_t kAssumedOllamaContextWindow = 32768;

class Catalog {
 public:
  // The built-in models.
  static Catalog BuiltIn();
  // Adds or replaces entries (from config).
  void Override(ModelInfo model);

  // nullptr when unknown.
  const ModelInfo* Find(std::string_view provider, std::string_view model) const;
  std::vector<const ModelInfo*> List(std::string_view provider = {}) const;
  // The entry, or for an unknown model one with zero prices and tools + text capabilities, so
  // unknown models still work. A dated snapshot ("…-20250929") falls back to its alias.
  ModelInfo Resolve(std::string_view provider, std::string_view model) const;

 private:
  std::vector<ModelInfo> models_;
};

// Cost in USD of `usage` on `model` (cache reads/writes priced separately); 0 for free/local.
double CostOf(const ModelInfo& model, const Usage& usage);

}  // namespace lai::llm
