#include "agent/xml_tools.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent/session_tool_specs.h"
#include "agent/tools/args.h"
#include "agent/tools/tool.h"

namespace lai::agent {
namespace {

using nlohmann::json;

std::vector<XmlToolSpec> BuildSpecs() {
  std::vector<XmlToolSpec> specs;
  for (const auto& tool : WorkspaceTools()) {
    Result<XmlToolSpec> spec = XmlToolSpec::FromSchema(tool->name(), tool->parameters_schema());
    EXPECT_TRUE(spec.ok()) << tool->name();
    if (spec.ok()) specs.push_back(std::move(*spec));
  }
  for (const SessionToolSpec& tool : SessionToolSpecs()) {
    Result<XmlToolSpec> spec = XmlToolSpec::FromSchema(tool.name, tool.parameters_schema);
    EXPECT_TRUE(spec.ok()) << tool.name;
    if (spec.ok()) specs.push_back(std::move(*spec));
  }
  return specs;
}

// Built once: parsing every schema costs more than parsing a message.
const std::vector<XmlToolSpec>& AllSpecs() {
  static const std::vector<XmlToolSpec> specs = BuildSpecs();
  return specs;
}

const XmlToolSpec& Spec(std::string_view name) {
  const std::vector<XmlToolSpec>& specs = AllSpecs();
  for (const XmlToolSpec& spec : specs) {
    if (spec.name == name) return spec;
  }
  ADD_FAILURE() << "no spec " << name;
  return specs.front();
}

std::string Escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else {
      out += c;
    }
  }
  return out;
}

const XmlToolSpec& Spec(std::string_view name);

// One line per event, adjacent text merged: how chunks were split must not matter. With
// `with_json`, complete calls add their XmlParamsToJson result.
std::string Render(const std::vector<XmlEvent>& events, bool with_json = false) {
  std::string out;
  std::string text;
  auto flush = [&] {
    if (!text.empty()) out += "text \"" + Escape(text) + "\"\n";
    text.clear();
  };
  for (const XmlEvent& event : events) {
    EXPECT_FALSE(event.type == XmlEventType::kText && event.text.empty());
    if (event.type == XmlEventType::kText) {
      text += event.text;
      continue;
    }
    flush();
    if (event.type == XmlEventType::kToolStart) {
      out += "start " + event.text + "\n";
      continue;
    }
    const XmlToolCall& call = event.call;
    out += "tool " + call.name + " #" + std::to_string(call.index) +
           (call.is_partial ? " partial" : "") + "\n";
    for (const auto& [name, value] : call.params) {
      out += "  param " + name + " \"" + Escape(value) + "\"\n";
    }
    if (!call.unterminated_param.empty()) out += "  unterminated " + call.unterminated_param + "\n";
    for (const std::string& name : call.oversized_params) out += "  oversized " + name + "\n";
    out += "  raw \"" + Escape(call.raw) + "\"\n";
    if (with_json && !call.is_partial) {
      Result<std::string> arguments = XmlParamsToJson(Spec(call.name), call.params);
      out += arguments.ok() ? "  json " + *arguments + "\n"
                            : "  json error " + arguments.error().message() + "\n";
    }
  }
  flush();
  return out;
}

std::string ParseInChunks(std::string_view message, const std::vector<size_t>& cuts,
                          bool with_json = false) {
  static XmlToolParser parser(AllSpecs());  // Reset() for each message: also under test here.
  parser.Reset();
  std::vector<XmlEvent> events;
  size_t from = 0;
  for (size_t cut : cuts) {
    EXPECT_TRUE(parser.Feed(message.substr(from, cut - from), events).ok());
    from = cut;
  }
  EXPECT_TRUE(parser.Feed(message.substr(from), events).ok());
  parser.Finish(events);
  return Render(events, with_json);
}

std::string ParseWhole(std::string_view message) { return ParseInChunks(message, {}); }

const XmlToolCall* FindCall(const std::vector<XmlEvent>& events, size_t index) {
  for (const XmlEvent& event : events) {
    if (event.type == XmlEventType::kToolComplete && event.call.index == index) return &event.call;
  }
  return nullptr;
}

std::vector<XmlEvent> ParseEvents(std::string_view message) {
  XmlToolParser parser(AllSpecs());
  std::vector<XmlEvent> events;
  EXPECT_TRUE(parser.Feed(message, events).ok());
  parser.Finish(events);
  return events;
}

std::string Param(const XmlToolCall& call, std::string_view name) {
  for (const auto& [key, value] : call.params) {
    if (key == name) return value;
  }
  ADD_FAILURE() << "no param " << name;
  return {};
}

const std::vector<std::string> kMessages = {
    "I'll read the file.\n<read_file>\n<args><file><path>src/a.cc</path><line_range>1-50"
    "</line_range></file></args>\n</read_file>",
    "<thinking>Look first.</thinking>\n<list_files>\n<path>src</path>\n<recursive>true"
    "</recursive>\n</list_files>\ntrailing words",
    "a < b and <b>bold</b> <rea <read_file <read_files>\n<write_to_file>\n<path>x.html</path>\n"
    "<content>\n<div>\n</other>\n<content>inner</content>\n</div>\n</content>\n"
    "</write_to_file>",
    "<execute_command>\n<command>make &amp;&amp; ./run</command>\n</execute_command>"
    "<attempt_completion><result>done</result></attempt_completion>",
    "<<read_file><path>a</path></read_file>>",
    "<apply_diff><path>f.cc</path><diff>\n<<<<<<< SEARCH\n:start_line:3\n-------\nold\n=======\n"
    "new\n>>>>>>> REPLACE\n</diff></apply_diff>",
    "<ask_followup_question><question>Which?</question><follow_up><suggest>A</suggest>"
    "<suggest mode=\"code\">B</suggest></follow_up></ask_followup_question>",
    "text then <write_to_file><path>p</path><content>\nunterminated",
};

class SplitTest : public testing::TestWithParam<size_t> {};

TEST_P(SplitTest, EverySplitPointGivesTheSameEvents) {
  const std::string& message = kMessages[GetParam()];
  const std::string whole = ParseWhole(message);
  for (size_t cut = 0; cut <= message.size(); ++cut) {
    ASSERT_EQ(ParseInChunks(message, {cut}), whole) << "cut at " << cut << " of " << message;
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < message.size(); ++i) every.push_back(i);
  EXPECT_EQ(ParseInChunks(message, every), whole) << message;
}

INSTANTIATE_TEST_SUITE_P(Messages, SplitTest, testing::Range<size_t>(0, kMessages.size()));

TEST(XmlToolParserTest, ReadsAToolCallAfterText) {
  EXPECT_EQ(ParseWhole(kMessages[0]),
            "text \"I'll read the file.\\n\"\n"
            "start read_file\n"
            "tool read_file #0\n"
            "  param args \"<file><path>src/a.cc</path><line_range>1-50</line_range></file>\"\n"
            "  raw \"<read_file>\\n<args><file><path>src/a.cc</path><line_range>1-50</line_range>"
            "</file></args>\\n</read_file>\"\n");
}

TEST(XmlToolParserTest, HoldsBackOnlyAPossibleToolTag) {
  XmlToolParser parser(AllSpecs());
  std::vector<XmlEvent> events;
  ASSERT_TRUE(parser.Feed("Hello <rea", events).ok());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].text, "Hello ");
  ASSERT_TRUE(parser.Feed("d_file><path>a</path></read_file>", events).ok());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].type, XmlEventType::kToolStart);
  EXPECT_EQ(events[2].type, XmlEventType::kToolComplete);

  XmlToolParser other(AllSpecs());
  events.clear();
  ASSERT_TRUE(other.Feed("Hello <rea", events).ok());
  ASSERT_TRUE(other.Feed("lly> yes", events).ok());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].text, "<really> yes");

  // A held-back prefix at the very end is text.
  XmlToolParser last(AllSpecs());
  events.clear();
  ASSERT_TRUE(last.Feed("see <list_fi", events).ok());
  ASSERT_EQ(events.size(), 1u);
  last.Finish(events);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].text, "<list_fi");
}

TEST(XmlToolParserTest, UnknownTagsAndThinkingStayText) {
  const std::string message =
      "<thinking>plan <b>x</b></thinking>\n<div class=\"a\">hi</div> <read_file/> "
      "<read_file attr=\"1\"> <fetch_instructions>x</fetch_instructions>";
  EXPECT_EQ(ParseWhole(message), "text \"" + Escape(message) + "\"\n");
}

TEST(XmlToolParserTest, ParamValuesKeepMarkup) {
  std::vector<XmlEvent> events = ParseEvents(kMessages[2]);
  const XmlToolCall* call = FindCall(events, 0);
  ASSERT_NE(call, nullptr);
  EXPECT_EQ(call->name, "write_to_file");
  EXPECT_FALSE(call->is_partial);
  EXPECT_EQ(Param(*call, "path"), "x.html");
  // Up to the LAST </content>; the newline after the tag is markup, the file's last one is not.
  EXPECT_EQ(Param(*call, "content"), "<div>\n</other>\n<content>inner</content>\n</div>\n");
  EXPECT_EQ(events.front().text, "a < b and <b>bold</b> <rea <read_file <read_files>\n");
}

TEST(XmlToolParserTest, ContentMayContainItsOwnClosingTagBeforeOtherParams) {
  std::vector<XmlEvent> events = ParseEvents(
      "<write_to_file><content>\nx</content>y\n</content>\n<path> a.xml </path>"
      "<line_count>2</line_count></write_to_file>");
  const XmlToolCall* call = FindCall(events, 0);
  ASSERT_NE(call, nullptr);
  EXPECT_EQ(Param(*call, "content"), "x</content>y\n");
  EXPECT_EQ(Param(*call, "path"), "a.xml");
  EXPECT_EQ(Param(*call, "line_count"), "2");
}

TEST(XmlToolParserTest, OnlyTheToolsOwnParamsOpen) {
  // <content> is not a list_files parameter; a tool tag inside a tool is not a call.
  std::vector<XmlEvent> events =
      ParseEvents("<list_files><content>x</content><read_file><path>d</path></list_files>");
  const XmlToolCall* call = FindCall(events, 0);
  ASSERT_NE(call, nullptr);
  ASSERT_EQ(call->params.size(), 1u);
  EXPECT_EQ(Param(*call, "path"), "d");
  EXPECT_EQ(FindCall(events, 1), nullptr);
}

TEST(XmlToolParserTest, ReportsEveryCallAndTheTextAfter) {
  XmlToolParser parser(AllSpecs());
  std::vector<XmlEvent> events;
  ASSERT_TRUE(parser.Feed(kMessages[3], events).ok());
  ASSERT_TRUE(parser.Feed("\nmore text", events).ok());
  parser.Finish(events);
  EXPECT_EQ(parser.tool_calls_seen(), 2u);
  EXPECT_EQ(Render(events),
            "start execute_command\n"
            "tool execute_command #0\n"
            "  param command \"make && ./run\"\n"
            "  raw \"<execute_command>\\n<command>make &amp;&amp; ./run</command>\\n"
            "</execute_command>\"\n"
            "start attempt_completion\n"
            "tool attempt_completion #1\n"
            "  param result \"done\"\n"
            "  raw \"<attempt_completion><result>done</result></attempt_completion>\"\n"
            "text \"\\nmore text\"\n");
}

TEST(XmlToolParserTest, AmpersandQuirkOnlyForCommands) {
  std::vector<XmlEvent> events =
      ParseEvents("<attempt_completion><result>a &amp; b</result></attempt_completion>");
  EXPECT_EQ(Param(*FindCall(events, 0), "result"), "a &amp; b");
}

// A command's entities are all decoded (only &amp; was: `2&gt;&amp;1` ran as `2&gt;&1`), each
// once: "&amp;lt;" is the text "&lt;".
TEST(XmlToolParserTest, CommandsLoseEveryHtmlEscapeOnce) {
  std::vector<XmlEvent> events = ParseEvents(
      "<execute_command><command>ls x 2&gt;&amp;1 | grep -v &quot;a &lt; b&quot; &gt; out; "
      "echo &#39;it&apos;s&#39; &amp;lt; &amp</command></execute_command>");
  EXPECT_EQ(Param(*FindCall(events, 0), "command"),
            "ls x 2>&1 | grep -v \"a < b\" > out; echo 'it's' &lt; &amp");
  // Numeric ones for printable ASCII ([, ], A); others stay as written.
  events = ParseEvents(
      "<execute_command><command>echo &#91;&#x5D;&#X41;&#65 &#0; &#x1F600;</command>"
      "</execute_command>");
  EXPECT_EQ(Param(*FindCall(events, 0), "command"), "echo []A&#65 &#0; &#x1F600;");
}

TEST(XmlToolParserTest, TrimsValuesButContentAndDiffLoseOnlyOneNewline) {
  std::vector<XmlEvent> events = ParseEvents(
      "<insert_content>\n<path>\n  a.txt \n</path>\n<line> 3 </line>\n<content>\n\n  x\n\n"
      "</content>\n</insert_content>");
  const XmlToolCall* call = FindCall(events, 0);
  ASSERT_NE(call, nullptr);
  EXPECT_EQ(Param(*call, "path"), "a.txt");
  EXPECT_EQ(Param(*call, "line"), "3");
  EXPECT_EQ(Param(*call, "content"), "\n  x\n");
  events = ParseEvents(kMessages[5]);
  EXPECT_EQ(Param(*FindCall(events, 0), "diff"),
            "<<<<<<< SEARCH\n:start_line:3\n-------\nold\n=======\nnew\n>>>>>>> REPLACE");
}

TEST(XmlToolParserTest, UnterminatedCallIsReportedPartialAtFinish) {
  std::vector<XmlEvent> events = ParseEvents(kMessages[7]);
  const XmlToolCall* call = FindCall(events, 0);
  ASSERT_NE(call, nullptr);
  EXPECT_TRUE(call->is_partial);
  EXPECT_EQ(call->unterminated_param, "content");
  EXPECT_EQ(Param(*call, "path"), "p");
  EXPECT_EQ(Param(*call, "content"), "unterminated");

  events = ParseEvents("<read_file><path>a</path>\n<pa");
  call = FindCall(events, 0);
  ASSERT_NE(call, nullptr);
  EXPECT_TRUE(call->is_partial);
  EXPECT_TRUE(call->unterminated_param.empty());
  EXPECT_EQ(call->raw, "<read_file><path>a</path>\n<pa");
}

TEST(XmlToolParserTest, DropsAndFlagsOversizedParams) {
  std::string big(XmlToolParser::kMaxParamBytes + 1, 'x');
  XmlToolParser parser(AllSpecs());
  std::vector<XmlEvent> events;
  ASSERT_TRUE(parser.Feed("<write_to_file><path>a</path><content>", events).ok());
  for (size_t at = 0; at < big.size(); at += 4096) {
    ASSERT_TRUE(parser.Feed(std::string_view(big).substr(at, 4096), events).ok());
  }
  ASSERT_TRUE(parser.Feed("</content><line_count>1</line_count></write_to_file>", events).ok());
  parser.Finish(events);
  const XmlToolCall* call = FindCall(events, 0);
  ASSERT_NE(call, nullptr);
  EXPECT_FALSE(call->is_partial);
  EXPECT_EQ(call->oversized_params, std::vector<std::string>{"content"});
  ASSERT_EQ(call->params.size(), 2u);
  EXPECT_EQ(Param(*call, "line_count"), "1");

  // Exactly at the limit is kept.
  std::string fits(XmlToolParser::kMaxParamBytes, 'y');
  events = ParseEvents("<attempt_completion><result>" + fits + "</result></attempt_completion>");
  EXPECT_EQ(Param(*FindCall(events, 0), "result").size(), fits.size());
}

TEST(XmlToolParserTest, RejectsMessagesOverOneMegabyte) {
  XmlToolParser parser(AllSpecs());
  std::vector<XmlEvent> events;
  std::string chunk(256 * 1024, 'a');
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(parser.Feed(chunk, events).ok());
  Status status = parser.Feed("b", events);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(status.error().message().find("exceeds maximum allowed size"), std::string::npos);
  EXPECT_FALSE(parser.Feed("", events).ok());
  parser.Reset();
  EXPECT_TRUE(parser.Feed("b", events).ok());
  EXPECT_EQ(parser.tool_calls_seen(), 0u);
}

TEST(XmlToolSpecTest, DerivesParamsFromTheSchema) {
  EXPECT_EQ(Spec("list_files").params, (std::vector<std::string>{"path", "recursive"}));
  const std::vector<std::string>& read = Spec("read_file").params;
  for (const char* name : {"files", "args", "path", "line_ranges", "line_range", "start_line",
                           "end_line"}) {
    EXPECT_NE(std::find(read.begin(), read.end(), name), read.end()) << name;
  }
  EXPECT_FALSE(XmlToolSpec::FromSchema("bad name", "{}").ok());
  Result<XmlToolSpec> bad = XmlToolSpec::FromSchema("x", "{\"properties\": [");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

json ToJson(std::string_view tool, const XmlParams& params) {
  Result<std::string> out = XmlParamsToJson(Spec(tool), params);
  EXPECT_TRUE(out.ok()) << tool << ": " << out.error().message();
  if (!out.ok()) return json();
  return json::parse(*out);
}

json ParseCallToJson(std::string_view message) {
  std::vector<XmlEvent> events = ParseEvents(message);
  const XmlToolCall* call = FindCall(events, 0);
  EXPECT_NE(call, nullptr) << message;
  if (call == nullptr) return json();
  return ToJson(call->name, call->params);
}

TEST(XmlParamsToJsonTest, ReadFileArgsForm) {
  json out = ParseCallToJson(
      "<read_file><args><file><path>src/a.cc</path><line_range>1-50</line_range>"
      "<line_range>70-80</line_range></file>\n<file><path>b.h</path></file></args></read_file>");
  EXPECT_EQ(out, json::parse(R"({"files":[{"path":"src/a.cc","line_ranges":["1-50","70-80"]},
                                          {"path":"b.h"}]})"));
  // What the tool will read from it.
  Result<ToolArgs> args = ToolArgs::Parse(out.dump());
  ASSERT_TRUE(args.ok());
  Result<std::vector<ToolArgs>> files = args->ObjectArray("files");
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 2u);
  Result<std::vector<ToolArgs::LineRange>> ranges = (*files)[0].LineRanges("line_ranges");
  ASSERT_TRUE(ranges.ok());
  ASSERT_EQ(ranges->size(), 2u);
  EXPECT_EQ((*ranges)[1].start, 70);
  EXPECT_EQ((*ranges)[1].end, 80);
}

TEST(XmlParamsToJsonTest, ReadFileSimpleAndLegacyForms) {
  EXPECT_EQ(ParseCallToJson("<read_file><path>a.cc</path></read_file>"),
            json::parse(R"({"files":[{"path":"a.cc"}]})"));
  EXPECT_EQ(ParseCallToJson(
                "<read_file><path>a.cc</path><line_range>3-4</line_range></read_file>"),
            json::parse(R"({"files":[{"path":"a.cc","line_ranges":["3-4"]}]})"));
  EXPECT_EQ(ParseCallToJson("<read_file><path>a.cc</path><start_line>3</start_line>"
                            "<end_line>9</end_line></read_file>"),
            json::parse(R"({"path":"a.cc","start_line":"3","end_line":"9"})"));
  // JSON written inside the tag is accepted too.
  EXPECT_EQ(ParseCallToJson("<read_file><files>[{\"path\":\"x\"}]</files></read_file>"),
            json::parse(R"({"files":[{"path":"x"}]})"));
}

TEST(XmlParamsToJsonTest, EditingTools) {
  EXPECT_EQ(ParseCallToJson("<write_to_file><path>a.txt</path><content>\nhi\n</content>"
                            "<line_count>1</line_count></write_to_file>"),
            json::parse(R"({"path":"a.txt","content":"hi\n","line_count":1})"));
  EXPECT_EQ(ParseCallToJson(kMessages[5]),
            json::parse(R"({"path":"f.cc","diff":"<<<<<<< SEARCH\n:start_line:3\n-------\nold\n)"
                        R"(=======\nnew\n>>>>>>> REPLACE"})"));
  EXPECT_EQ(ParseCallToJson("<insert_content><path>a</path><line>0</line><content>x\n"
                            "</content></insert_content>"),
            json::parse(R"({"path":"a","line":0,"content":"x"})"));
  EXPECT_EQ(ParseCallToJson("<search_and_replace><path>a</path><search> x </search><replace>"
                            "</replace><use_regex>TRUE</use_regex><ignore_case></ignore_case>"
                            "<start_line>2</start_line></search_and_replace>"),
            json::parse(R"({"path":"a","search":"x","replace":"","use_regex":true,
                            "ignore_case":null,"start_line":2})"));
  EXPECT_EQ(ParseCallToJson("<delete_file><path>old/</path></delete_file>"),
            json::parse(R"({"path":"old/"})"));
}

TEST(XmlParamsToJsonTest, ReadingAndCommandTools) {
  EXPECT_EQ(ParseCallToJson(kMessages[1].substr(kMessages[1].find("<list_files>"))),
            json::parse(R"({"path":"src","recursive":true})"));
  EXPECT_EQ(ParseCallToJson("<search_files><path>.</path><regex>fn\\s+<T></regex>"
                            "<file_pattern>*.rs</file_pattern></search_files>"),
            json::parse(R"({"path":".","regex":"fn\\s+<T>","file_pattern":"*.rs"})"));
  EXPECT_EQ(ParseCallToJson(kMessages[3]), json::parse(R"({"command":"make && ./run"})"));
}

TEST(XmlParamsToJsonTest, SessionTools) {
  EXPECT_EQ(ParseCallToJson(kMessages[6]),
            json::parse(R"({"question":"Which?","follow_up":[{"text":"A"},
                                                            {"text":"B","mode":"code"}]})"));
  EXPECT_EQ(ParseCallToJson("<attempt_completion><result>\nDone.\n</result></attempt_completion>"),
            json::parse(R"({"result":"Done."})"));
  EXPECT_EQ(ParseCallToJson("<switch_mode><mode_slug>code</mode_slug><reason>ready</reason>"
                            "</switch_mode>"),
            json::parse(R"({"mode_slug":"code","reason":"ready"})"));
  EXPECT_EQ(ParseCallToJson("<new_task><mode>debug</mode><message>Fix <b>it</b></message>"
                            "<todos>\n- [ ] one\n- [x] two\n</todos></new_task>"),
            json::parse(R"({"mode":"debug","message":"Fix <b>it</b>",
                            "todos":"- [ ] one\n- [x] two"})"));
  EXPECT_EQ(ParseCallToJson("<update_todo_list><todos>\n[ ] a\n[-] b\n</todos>"
                            "</update_todo_list>"),
            json::parse(R"({"todos":"[ ] a\n[-] b"})"));
}

TEST(XmlParamsToJsonTest, CoversEveryWorkspaceTool) {
  // Every tool's own parameters map onto its schema: each one given as a plain value converts.
  for (const auto& tool : WorkspaceTools()) {
    json schema = json::parse(tool->parameters_schema());
    XmlParams params;
    for (auto it = schema["properties"].begin(); it != schema["properties"].end(); ++it) {
      const json& type = it.value()["type"];
      std::string kind = type.is_array() ? type[0].get<std::string>() : type.get<std::string>();
      if (kind == "integer") {
        params.emplace_back(it.key(), "7");
      } else if (kind == "boolean") {
        params.emplace_back(it.key(), "false");
      } else if (kind == "array") {
        params.emplace_back(it.key(), "<file><path>p</path></file>");
      } else {
        params.emplace_back(it.key(), "v");
      }
    }
    Result<std::string> out = XmlParamsToJson(Spec(tool->name()), params);
    ASSERT_TRUE(out.ok()) << tool->name() << ": " << out.error().message();
    EXPECT_TRUE(ToolArgs::Parse(*out).ok()) << tool->name();
    EXPECT_EQ(json::parse(*out).size(), params.size()) << tool->name() << " " << *out;
  }
}

TEST(XmlParamsToJsonTest, BadValuesNameTheParameter) {
  Result<std::string> out = XmlParamsToJson(Spec("insert_content"),
                                            {{"path", "a"}, {"line", "third"}, {"content", "x"}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(out.error().message().find("parameter 'line'"), std::string::npos);
  EXPECT_NE(out.error().message().find("expected an integer, got 'third'"), std::string::npos);

  out = XmlParamsToJson(Spec("list_files"), {{"path", "a"}, {"recursive", "maybe"}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message().find("parameter 'recursive'"), std::string::npos);

  out = XmlParamsToJson(Spec("read_file"), {{"args", "<file><path>a</path>"}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message().find("parameter 'args'"), std::string::npos);
  EXPECT_NE(out.error().message().find("<file> has no closing </file>"), std::string::npos);

  out = XmlParamsToJson(Spec("ask_followup_question"),
                        {{"question", "q"}, {"follow_up", "<suggest mode=code>A</suggest>"}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message().find("parameter 'follow_up'"), std::string::npos);

  // Text that is no object: an error, not an empty object (an MCP tool was called without its
  // arguments, and the user asked to allow {}).
  out = XmlParamsToJson(Spec("use_mcp_tool"),
                        {{"server_name", "s"}, {"tool_name", "t"}, {"arguments", "not json"}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message().find("parameter 'arguments'"), std::string::npos);
  EXPECT_NE(out.error().message().find("expected a JSON object or one element per field, got "
                                       "'not json'"),
            std::string::npos)
      << out.error().message();
  EXPECT_EQ(ToJson("use_mcp_tool", {{"server_name", "s"},
                                    {"tool_name", "t"},
                                    {"arguments", "{\"text\":\"x\"}"}})["arguments"]["text"],
            "x");
  EXPECT_EQ(ToJson("use_mcp_tool", {{"server_name", "s"},
                                    {"tool_name", "t"},
                                    {"arguments", "<text>y</text>"}})["arguments"]["text"],
            "y");
}

TEST(DescribeToolXmlTest, DocumentsParametersAndUsage) {
  const Tool* list = FindWorkspaceTool("list_files");
  ASSERT_NE(list, nullptr);
  std::string text =
      DescribeToolXml(list->name(), list->description(), list->parameters_schema());
  EXPECT_TRUE(text.starts_with("## list_files\nDescription: ")) << text;
  EXPECT_NE(text.find("Parameters:\n- path: (required) Directory to list"), std::string::npos)
      << text;
  EXPECT_NE(text.find("- recursive: (optional) List recursively"), std::string::npos) << text;
  EXPECT_NE(text.find("Usage:\n<list_files>\n<path>path here</path>\n"
                      "<recursive>true or false</recursive> (optional)\n</list_files>\n"),
            std::string::npos)
      << text;

  const Tool* read = FindWorkspaceTool("read_file");
  ASSERT_NE(read, nullptr);
  text = DescribeToolXml(read->name(), read->description(), read->parameters_schema());
  EXPECT_NE(text.find("- args: (required) Contains one or more <file> elements"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("<read_file>\n<args>\n  <file>\n    <path>path here</path>\n"
                      "    <line_range>"),
            std::string::npos)
      << text;

  const SessionToolSpec* ask = FindSessionToolSpec("ask_followup_question");
  ASSERT_NE(ask, nullptr);
  text = DescribeToolXml(ask->name, ask->description, ask->parameters_schema);
  EXPECT_NE(text.find("<follow_up>\n<suggest>text here</suggest>\n"
                      "<suggest mode=\"mode\">text here</suggest>\n</follow_up>"),
            std::string::npos)
      << text;

  // Every tool's usage example parses back into a call with its parameters.
  for (const auto& tool : WorkspaceTools()) {
    std::string doc =
        DescribeToolXml(tool->name(), tool->description(), tool->parameters_schema());
    std::string usage = doc.substr(doc.find("Usage:\n") + 7);
    std::vector<XmlEvent> events = ParseEvents(usage);
    const XmlToolCall* call = FindCall(events, 0);
    ASSERT_NE(call, nullptr) << doc;
    EXPECT_FALSE(call->is_partial) << doc;
    EXPECT_FALSE(call->params.empty()) << doc;
  }
}

// tests/testdata/xml_tools/<name>.txt is a message; <name>.expected is Render() of its events
// fed in 7-byte chunks, with each complete call's JSON arguments. LAI_GOLDEN_UPDATE=1 rewrites the
// expected files.
TEST(XmlToolParserTest, GoldenFiles) {
  const std::filesystem::path directory = std::filesystem::path(LAI_TESTDATA_DIR) / "xml_tools";
  size_t cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    if (entry.path().extension() != ".txt") continue;
    ++cases;
    std::ifstream input(entry.path(), std::ios::binary);
    std::string message((std::istreambuf_iterator<char>(input)), {});
    std::vector<size_t> cuts;
    for (size_t at = 7; at < message.size(); at += 7) cuts.push_back(at);
    std::string actual = ParseInChunks(message, cuts, /*with_json=*/true);
    std::filesystem::path expected_path = entry.path();
    expected_path.replace_extension(".expected");
    if (std::getenv("LAI_GOLDEN_UPDATE") != nullptr) {
      std::ofstream(expected_path, std::ios::binary) << actual;
      continue;
    }
    std::ifstream expected_file(expected_path, std::ios::binary);
    ASSERT_TRUE(expected_file.good()) << expected_path;
    std::string expected((std::istreambuf_iterator<char>(expected_file)), {});
    EXPECT_EQ(actual, expected) << entry.path();
  }
  EXPECT_GE(cases, 3u);
}

}  // namespace
}  // namespace lai::agent
