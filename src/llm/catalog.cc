#include "llm/catalog.h"

#include <algorithm>
#include <cctype>

namespace lai::llm {
namespace {

struct Row {
  const char* provider;
  const char* id;
  int64_t context_window;
  int64_t max_output_tokens;
  bool tools, images, reasoning, prompt_cache;
  double input, output, cache_write, cache_read;
};

// Prices in USD per million tokens, from the providers' price lists as Kilo Code's model tables
// record them (packages/types/src/providers/*.ts); long-context tiers use the base tier.
constexpr Row kBuiltIn[] = {
    // OpenAI: prompt_tokens include cached tokens (see CostOf).
    {"openai", "gpt-5", 400000, 128000, true, true, true, true, 1.25, 10.0, 0, 0.125},
    {"openai", "gpt-5-mini", 400000, 128000, true, true, true, true, 0.25, 2.0, 0, 0.025},
    {"openai", "gpt-5-nano", 400000, 128000, true, true, true, true, 0.05, 0.4, 0, 0.005},
    {"openai", "gpt-5-codex", 400000, 128000, true, true, true, true, 1.25, 10.0, 0, 0.125},
    {"openai", "gpt-4.1", 1047576, 32768, true, true, false, true, 2.0, 8.0, 0, 0.5},
    {"openai", "gpt-4.1-mini", 1047576, 32768, true, true, false, true, 0.4, 1.6, 0, 0.1},
    {"openai", "gpt-4.1-nano", 1047576, 32768, true, true, false, true, 0.1, 0.4, 0, 0.025},
    {"openai", "gpt-4o", 128000, 16384, true, true, false, true, 2.5, 10.0, 0, 1.25},
    {"openai", "gpt-4o-mini", 128000, 16384, true, true, false, true, 0.15, 0.6, 0, 0.075},
    {"openai", "o3", 200000, 100000, true, true, true, true, 2.0, 8.0, 0, 0.5},
    {"openai", "o3-mini", 200000, 100000, true, false, true, true, 1.1, 4.4, 0, 0.55},
    {"openai", "o4-mini", 200000, 100000, true, true, true, true, 1.1, 4.4, 0, 0.275},
    {"openai", "o1", 200000, 100000, true, true, true, true, 15.0, 60.0, 0, 7.5},
    // Anthropic: input_tokens exclude cache writes and reads, priced separately.
    {"anthropic", "claude-sonnet-4-5", 200000, 64000, true, true, true, true, 3.0, 15.0, 3.75, 0.3},
    {"anthropic", "claude-sonnet-4-20250514", 200000, 64000, true, true, true, true, 3.0, 15.0,
     3.75, 0.3},
    {"anthropic", "claude-opus-4-1", 200000, 32000, true, true, true, true, 15.0, 75.0, 18.75, 1.5},
    {"anthropic", "claude-opus-4-20250514", 200000, 32000, true, true, true, true, 15.0, 75.0,
     18.75, 1.5},
    {"anthropic", "claude-haiku-4-5", 200000, 64000, true, true, true, true, 1.0, 5.0, 1.25, 0.1},
    {"anthropic", "claude-3-7-sonnet-20250219", 200000, 8192, true, true, true, true, 3.0, 15.0,
     3.75, 0.3},
    {"anthropic", "claude-3-5-sonnet-20241022", 200000, 8192, true, true, false, true, 3.0, 15.0,
     3.75, 0.3},
    {"anthropic", "claude-3-5-haiku-20241022", 200000, 8192, true, false, false, true, 0.8, 4.0,
     1.0, 0.08},
    // Gemini: promptTokenCount includes cachedContentTokenCount.
    {"gemini", "gemini-2.5-pro", 1048576, 65535, true, true, true, true, 1.25, 10.0, 0, 0.31},
    {"gemini", "gemini-2.5-flash", 1048576, 65535, true, true, true, true, 0.3, 2.5, 0, 0.075},
    {"gemini", "gemini-2.5-flash-lite", 1048576, 65535, true, true, true, true, 0.1, 0.4, 0, 0.025},
    {"gemini", "gemini-2.0-flash", 1048576, 8192, true, true, false, true, 0.1, 0.4, 0, 0.025},
    // OpenRouter: OpenAI wire format and usage semantics.
    {"openrouter", "anthropic/claude-sonnet-4.5", 200000, 64000, true, true, true, true, 3.0, 15.0,
     3.75, 0.3},
    {"openrouter", "anthropic/claude-opus-4.1", 200000, 32000, true, true, true, true, 15.0, 75.0,
     18.75, 1.5},
    {"openrouter", "openai/gpt-5", 400000, 128000, true, true, true, true, 1.25, 10.0, 0, 0.125},
    {"openrouter", "openai/gpt-4.1", 1047576, 32768, true, true, false, true, 2.0, 8.0, 0, 0.5},
    {"openrouter", "google/gemini-2.5-pro", 1048576, 65535, true, true, true, true, 1.25, 10.0, 0,
     0.31},
    {"openrouter", "deepseek/deepseek-chat-v3.1", 163840, 163840, true, false, true, false, 0.27,
     1.1, 0, 0},
    {"openrouter", "x-ai/grok-code-fast-1", 256000, 10000, true, false, true, true, 0.2, 1.5, 0,
     0.02},
    // DeepSeek.
    {"deepseek", "deepseek-chat", 128000, 8192, true, false, false, true, 0.56, 1.68, 0, 0.07},
    {"deepseek", "deepseek-reasoner", 128000, 65536, true, false, true, true, 0.56, 1.68, 0, 0.07},
    // Groq, Mistral and xAI: their implicit profiles' models (OpenAI wire format and usage).
    {"groq", "llama-3.3-70b-versatile", 131072, 32768, true, false, false, false, 0.59, 0.79, 0, 0},
    {"mistral", "mistral-large-latest", 131072, 0, true, false, false, false, 2.0, 6.0, 0, 0},
    {"xai", "grok-4", 256000, 0, true, true, true, true, 3.0, 15.0, 0, 0.75},
    // Ollama: local, free.
    // Ollama's windows are what it is told to give a model (num_ctx), which its cache takes
    // memory for on the user's machine: 32K at most, unless [models."ollama/…"] says more.
    {"ollama", "qwen2.5-coder:7b", 32768, 8192, true, false, false, false, 0, 0, 0, 0},
    {"ollama", "qwen2.5-coder:14b", 32768, 8192, true, false, false, false, 0, 0, 0, 0},
    {"ollama", "qwen3:8b", 32768, 8192, true, false, true, false, 0, 0, 0, 0},
    {"ollama", "llama3.1:8b", 32768, 8192, true, false, false, false, 0, 0, 0, 0},
    {"ollama", "gpt-oss:20b", 32768, 8192, true, false, true, false, 0, 0, 0, 0},
    {"ollama", "deepseek-r1:8b", 32768, 8192, false, false, true, false, 0, 0, 0, 0},
};

// "claude-sonnet-4-5-20250929" → "claude-sonnet-4-5": dated snapshots price like their alias.
std::string_view WithoutDateSuffix(std::string_view id) {
  if (id.size() < 10) return id;
  std::string_view tail = id.substr(id.size() - 9);
  if (tail[0] != '-') return id;
  for (char c : tail.substr(1)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return id;
  }
  return id.substr(0, id.size() - 9);
}

}  // namespace

Catalog Catalog::BuiltIn() {
  Catalog catalog;
  catalog.models_.reserve(std::size(kBuiltIn));
  for (const Row& row : kBuiltIn) {
    ModelInfo model;
    model.provider = row.provider;
    model.id = row.id;
    model.context_window = row.context_window;
    model.max_output_tokens = row.max_output_tokens;
    model.supports_tools = row.tools;
    model.supports_images = row.images;
    model.supports_reasoning = row.reasoning;
    model.supports_prompt_cache = row.prompt_cache;
    model.input_price = row.input;
    model.output_price = row.output;
    model.cache_write_price = row.cache_write;
    model.cache_read_price = row.cache_read;
    catalog.models_.push_back(std::move(model));
  }
  return catalog;
}

void Catalog::Override(ModelInfo model) {
  for (ModelInfo& existing : models_) {
    if (existing.provider == model.provider && existing.id == model.id) {
      existing = std::move(model);
      return;
    }
  }
  models_.push_back(std::move(model));
}

const ModelInfo* Catalog::Find(std::string_view provider, std::string_view model) const {
  for (std::string_view id : {model, WithoutDateSuffix(model)}) {
    for (const ModelInfo& info : models_) {
      if (info.provider == provider && info.id == id) return &info;
    }
  }
  return nullptr;
}

ModelInfo Catalog::Resolve(std::string_view provider, std::string_view model) const {
  if (const ModelInfo* found = Find(provider, model)) return *found;
  // A model the catalog does not know (a new one, a local server's): a 128K-token window, as Kilo
  // Code assumes, so that the context is still condensed before it overflows (with no window at
  // all it never was). `[models."provider/id"]` in the config gives the real one.
  ModelInfo unknown;
  unknown.provider = std::string(provider);
  unknown.id = std::string(model);
  unknown.context_window =
      provider == "ollama" ? kAssumedOllamaContextWindow : kAssumedContextWindow;
  unknown.supports_tools = true;
  return unknown;
}

std::vector<const ModelInfo*> Catalog::List(std::string_view provider) const {
  std::vector<const ModelInfo*> out;
  for (const ModelInfo& info : models_) {
    if (provider.empty() || info.provider == provider) out.push_back(&info);
  }
  return out;
}

double CostOf(const ModelInfo& model, const Usage& usage) {
  constexpr double kPerToken = 1e-6;
  double cache_writes = static_cast<double>(usage.cache_write_tokens) * model.cache_write_price;
  double cache_reads = static_cast<double>(usage.cache_read_tokens) * model.cache_read_price;
  int64_t full_price_input = usage.input_tokens;
  if (model.provider != "anthropic") {
    // OpenAI-style counts (OpenAI, OpenRouter, Gemini, …) include the cached tokens in the input.
    full_price_input = std::max<int64_t>(
        0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens);
  }
  double input = static_cast<double>(full_price_input) * model.input_price;
  // Reasoning tokens are already part of output_tokens for every provider we parse.
  double output = static_cast<double>(usage.output_tokens) * model.output_price;
  return (input + output + cache_writes + cache_reads) * kPerToken;
}

}  // namespace lai::llm
