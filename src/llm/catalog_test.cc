#include "llm/catalog.h"

#include <gtest/gtest.h>

namespace lai::llm {
namespace {

TEST(CatalogTest, BuiltInHasTheMainModelsOfEachProvider) {
  Catalog catalog = Catalog::BuiltIn();
  for (auto [provider, id] : std::initializer_list<std::pair<const char*, const char*>>{
           {"openai", "gpt-4.1"},
           {"openai", "gpt-4o-mini"},
           {"openai", "o3"},
           {"openai", "o4-mini"},
           {"openai", "gpt-5"},
           {"anthropic", "claude-sonnet-4-5"},
           {"anthropic", "claude-opus-4-1"},
           {"anthropic", "claude-haiku-4-5"},
           {"anthropic", "claude-3-7-sonnet-20250219"},
           {"gemini", "gemini-2.5-pro"},
           {"gemini", "gemini-2.5-flash"},
           {"openrouter", "anthropic/claude-sonnet-4.5"}}) {
    const ModelInfo* model = catalog.Find(provider, id);
    ASSERT_NE(model, nullptr) << provider << "/" << id;
    EXPECT_GT(model->context_window, 0) << id;
    EXPECT_GT(model->max_output_tokens, 0) << id;
    EXPECT_GT(model->input_price, 0) << id;
  }
  const ModelInfo* sonnet = catalog.Find("anthropic", "claude-sonnet-4-5");
  EXPECT_EQ(sonnet->context_window, 200000);
  EXPECT_DOUBLE_EQ(sonnet->input_price, 3.0);
  EXPECT_DOUBLE_EQ(sonnet->cache_write_price, 3.75);
  EXPECT_TRUE(sonnet->supports_prompt_cache);
  for (const ModelInfo* model : catalog.List("ollama")) EXPECT_EQ(model->input_price, 0);
  EXPECT_FALSE(catalog.List("ollama").empty());
  EXPECT_GT(catalog.List().size(), catalog.List("openai").size());
}

TEST(CatalogTest, DatedSnapshotsFindTheirAlias) {
  Catalog catalog = Catalog::BuiltIn();
  const ModelInfo* model = catalog.Find("anthropic", "claude-sonnet-4-5-20250929");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->id, "claude-sonnet-4-5");
  EXPECT_EQ(catalog.Find("anthropic", "claude-sonnet-4-5-2025092x"), nullptr);
  EXPECT_EQ(catalog.Find("openai", "claude-sonnet-4-5"), nullptr);
}

TEST(CatalogTest, UnknownModelsWorkWithToolsAndZeroCost) {
  Catalog catalog = Catalog::BuiltIn();
  ModelInfo model = catalog.Resolve("openai", "my-finetune");
  EXPECT_EQ(model.id, "my-finetune");
  EXPECT_TRUE(model.supports_tools);
  EXPECT_FALSE(model.supports_images);
  EXPECT_EQ(CostOf(model, Usage{.input_tokens = 1000000, .output_tokens = 1000000}), 0);
  EXPECT_EQ(model.context_window, kAssumedContextWindow);
  // A local Ollama model is planned with the window Ollama is told to give it (num_ctx).
  EXPECT_EQ(catalog.Resolve("ollama", "qwen2.5-coder:14b").context_window,
            kAssumedOllamaContextWindow);
}

TEST(CatalogTest, OverrideReplacesOrAdds) {
  Catalog catalog = Catalog::BuiltIn();
  ModelInfo custom{.provider = "openai", .id = "gpt-4.1", .context_window = 5, .input_price = 9};
  catalog.Override(custom);
  EXPECT_EQ(catalog.Find("openai", "gpt-4.1")->context_window, 5);
  size_t before = catalog.List().size();
  catalog.Override(ModelInfo{.provider = "ollama", .id = "mine"});
  EXPECT_EQ(catalog.List().size(), before + 1);
}

TEST(CostOfTest, AnthropicInputExcludesCacheTokens) {
  const Catalog catalog = Catalog::BuiltIn();
  const ModelInfo* sonnet = catalog.Find("anthropic", "claude-sonnet-4-5");
  ASSERT_NE(sonnet, nullptr);
  Usage usage{.input_tokens = 1000,
              .output_tokens = 2000,
              .cache_write_tokens = 10000,
              .cache_read_tokens = 100000};
  // 1000*3 + 2000*15 + 10000*3.75 + 100000*0.3 = 3000 + 30000 + 37500 + 30000 per million.
  EXPECT_NEAR(CostOf(*sonnet, usage), 100500e-6, 1e-12);
}

TEST(CostOfTest, OpenAiPromptTokensIncludeCachedOnes) {
  Catalog catalog = Catalog::BuiltIn();
  const ModelInfo* gpt = catalog.Find("openai", "gpt-4.1");
  Usage usage{.input_tokens = 10000,
              .output_tokens = 1000,
              .cache_read_tokens = 8000,
              .reasoning_tokens = 500};
  // (10000-8000)*2 + 8000*0.5 + 1000*8 = 4000 + 4000 + 8000 per million.
  EXPECT_NEAR(CostOf(*gpt, usage), 16000e-6, 1e-12);
  // Gemini counts the same way.
  const ModelInfo* flash = catalog.Find("gemini", "gemini-2.5-flash");
  EXPECT_NEAR(
      CostOf(*flash, Usage{.input_tokens = 1000, .output_tokens = 0, .cache_read_tokens = 1000}),
      1000 * 0.075e-6, 1e-12);
}

}  // namespace
}  // namespace lai::llm
