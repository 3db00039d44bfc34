// The XML tool-call protocol for models without native tool calling: a streaming parser for tool
// calls written as tags in the assistant's text, their conversion to the JSON arguments the tools
// take, and the tool documentation for the system prompt. XmlToolParser is thread-compatible; the
// free functions are thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace lai::agent {

// One tool as the XML protocol sees it. Build with FromSchema.
struct XmlToolSpec {
  std::string name;
  // The tags that open a parameter inside <name>…</name>: the schema's top-level properties, plus
  // the alternative forms XmlParamsToJson understands (`args`, an array item's own properties,
  // singular `line_range`, read_file's legacy start_line/end_line).
  std::vector<std::string> params;
  std::string schema_json;  // The tool's JSON schema, as given.

  // Errors: kInvalidArgument when the name is empty or not a tag name, or the schema is not a
  // JSON object (with an object `properties`, when present).
  static Result<XmlToolSpec> FromSchema(std::string_view name, std::string_view schema_json);
};

// Parameters in the order they appeared; values after trimming (see XmlToolParser).
using XmlParams = std::vector<std::pair<std::string, std::string>>;

struct XmlToolCall {
  std::string name;
  XmlParams params;
  std::string raw;  // From `<name>` to `</name>` inclusive (to the end of the text if partial).
  // Set by Finish() when the message ended inside the call: no `</name>` arrived.
  bool is_partial = false;
  // The parameter whose closing tag never arrived (partial calls only); its value so far is in
  // `params`.
  std::string unterminated_param;
  // Parameters over kMaxParamBytes: dropped from `params`, named here.
  std::vector<std::string> oversized_params;
  size_t index = 0;  // 0 for the message's first tool call, 1 for the second, …
};

enum class XmlEventType {
  kText,          // `text` is assistant text to show (never tool markup). Never empty.
  kToolStart,     // `text` is the tool name: a known tool's opening tag was read.
  kToolComplete,  // `call` is the finished (or, from Finish(), partial) call.
};

struct XmlEvent {
  XmlEventType type = XmlEventType::kText;
  std::string text;
  XmlToolCall call;  // kToolComplete only.
};

// Streaming parser for one assistant message (Kilo Code's AssistantMessageParser semantics):
// - A tool call starts only at `<tool>` for a known tool, written exactly so (no attributes);
//   any other tag stays text. Text before, between and after calls is reported as kText
//   (untrimmed: `<thinking>` and whitespace pass through; the caller trims and strips).
// - Inside a call, only that tool's known parameter tags open a parameter, and `</tool>` ends the
//   call; anything else between parameters is ignored (kept in `raw`). A parameter ends at its
//   own closing tag, so values may hold other markup. `content` takes everything up to the LAST
//   `</content>` before `</tool>` (files that contain `</content>` themselves).
// - Values: `content` and `diff` lose one leading and one trailing newline (write_to_file's
//   `content`, a whole file, keeps its trailing one); other values are
//   trimmed. Nothing is XML-unescaped, except Kilo's `&amp;` → `&` in execute_command.command.
// - Every tool call is reported, also after the first: the caller enforces one tool per message
//   (tool_calls_seen(), XmlToolCall::index).
// Text is held back only while the end of a chunk could be the start of a tool tag (`<rea`).
// The work per chunk is linear in its size.
// Thread-compatible.
class XmlToolParser {
 public:
  static constexpr size_t kMaxMessageBytes = 1024 * 1024;
  static constexpr size_t kMaxParamBytes = 512 * 1024;

  explicit XmlToolParser(std::vector<XmlToolSpec> tools);
  ~XmlToolParser();
  XmlToolParser(XmlToolParser&&) noexcept;
  XmlToolParser& operator=(XmlToolParser&&) noexcept;

  // Consumes the next piece of the message and appends what it completed to `events`.
  // Errors: kResourceExhausted once the message passes kMaxMessageBytes (nothing of that chunk is
  // parsed; every later call fails the same way). Precondition: Finish() was not called.
  Status Feed(std::string_view chunk, std::vector<XmlEvent>& events);

  // The message ended: flushes held-back text, and reports an unterminated call as kToolComplete
  // with is_partial set. Call once; a new message needs a new parser (or Reset()).
  void Finish(std::vector<XmlEvent>& events);

  // Forgets the message; the tools stay.
  void Reset();

  // Tool calls started in this message so far (complete, partial or in progress).
  size_t tool_calls_seen() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The JSON arguments object (compact text) for `params` of `spec`'s tool, shaped by its schema:
// - string properties stay as written; integer/number/boolean properties are converted
//   ("12" → 12, "TRUE" → true); an empty value of a nullable property becomes null;
// - array and object properties are read as nested XML (a JSON value is also accepted), where an
//   element's children are its properties, `<line_range>` fills `line_ranges`, and an element
//   with text but no children fills the item's `text` with its attributes as other properties;
// - `<args>…</args>` holds top-level properties (`<args><file>…</file></args>` fills `files`);
// - read_file's simple `<path>` form becomes one file; its legacy start_line/end_line pass
//   through, as do parameters the schema does not know.
// The XML form of each tool:
//   read_file            <args><file><path>P</path><line_range>1-50</line_range>…</file>…</args>
//                        or <path>P</path> [<start_line>N</start_line><end_line>M</end_line>]
//   write_to_file        <path>P</path><content>…</content>[<line_count>N</line_count>]
//   apply_diff           <path>P</path><diff>SEARCH/REPLACE blocks</diff>
//   insert_content       <path>P</path><line>N</line><content>…</content>
//   search_and_replace   <path>P</path><search>S</search><replace>R</replace>
//                        [<use_regex>true</use_regex>][<ignore_case>…][<start_line>…][<end_line>…]
//   delete_file          <path>P</path>
//   list_files           <path>P</path>[<recursive>true</recursive>]
//   search_files         <path>P</path><regex>R</regex>[<file_pattern>*.ts</file_pattern>]
//   execute_command      <command>C</command>[<cwd>D</cwd>]
//   ask_followup_question <question>Q</question>
//                        <follow_up><suggest>A</suggest><suggest mode="code">B</suggest></follow_up>
//   attempt_completion   <result>R</result>
//   switch_mode          <mode_slug>code</mode_slug><reason>R</reason>
//   new_task             <mode>code</mode><message>M</message>[<todos>- [ ] a</todos>]
//   update_todo_list     <todos>- [ ] a\n- [x] b</todos>
// Errors: kInvalidArgument with a message for the model naming the parameter and the expected
// form; kInternal when spec.schema_json is not valid JSON.
Result<std::string> XmlParamsToJson(const XmlToolSpec& spec, const XmlParams& params);

// The tool's documentation for a system prompt in the XML protocol:
//   ## name / Description: … / Parameters: - p: (required) … / Usage: <name>…</name>
// An invalid schema yields the description without parameters.
std::string DescribeToolXml(std::string_view name, std::string_view description,
                            std::string_view schema_json);

}  // namespace lai::agent
