#include "agent/approval_policy.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "workspace/workspace.h"

namespace lai::agent {
namespace {

// Sub-commands nest through substitutions; deeper than this is treated as dangerous and not
// split further.
constexpr int kMaxNesting = 8;

std::string_view Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  if (prefix.size() > text.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

// Index of the ')' closing the '(' at `open`, or npos. Quotes and escapes are skipped.
size_t MatchingParen(std::string_view text, size_t open) {
  int depth = 0;
  char quote = 0;
  for (size_t i = open; i < text.size(); ++i) {
    char c = text[i];
    if (quote == '\'') {
      if (c == '\'') quote = 0;
      continue;
    }
    if (c == '\\') {
      ++i;
      continue;
    }
    if (quote == '"') {
      if (c == '"') quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')' && --depth == 0) {
      return i;
    }
  }
  return std::string_view::npos;
}

// Index of the unescaped '`' closing the one at `open`, or npos.
size_t MatchingBacktick(std::string_view text, size_t open) {
  for (size_t i = open + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '`') {
      return i;
    }
  }
  return std::string_view::npos;
}

// ${…} bodies that can run code or smuggle it in: @P/@Q/@E/@A/@a transformations, ${!name}
// indirection, backslash escapes (\140 is a backtick once expanded).
bool IsDangerousExpansion(std::string_view body) {
  if (!body.empty() && body.front() == '!') return true;
  if (body.find('\\') != std::string_view::npos) return true;
  for (size_t at = body.find('@'); at != std::string_view::npos; at = body.find('@', at + 1)) {
    if (at + 1 < body.size() &&
        std::string_view("PQEAa").find(body[at + 1]) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

class CommandScanner {
 public:
  void Scan(std::string_view text, int depth);

  std::vector<std::string> commands;
  bool dangerous = false;

 private:
  // Adds the command inside a substitution spanning [open, close] (inner text from inner_begin).
  size_t Substitution(std::string_view text, size_t inner_begin, size_t close, int depth,
                      std::string& current, size_t start) {
    dangerous = true;
    size_t end = close == std::string_view::npos ? text.size() : close;
    Scan(text.substr(inner_begin, end - inner_begin), depth + 1);
    current.append(text.substr(start, std::min(text.size(), end + 1) - start));
    return end;
  }
};

void CommandScanner::Scan(std::string_view text, int depth) {
  if (depth > kMaxNesting) {
    dangerous = true;
    return;
  }
  std::string current;
  auto flush = [&] {
    std::string_view trimmed = Trim(current);
    if (!trimmed.empty()) commands.emplace_back(trimmed);
    current.clear();
  };
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (quote == '\'') {
      current += c;
      if (c == '\'') quote = 0;
      continue;
    }
    if (c == '\\') {
      if (next == '\n') {  // Line continuation.
        current += ' ';
      } else {
        current += c;
        if (next != '\0') current += next;
      }
      ++i;
      continue;
    }
    // Arithmetic, $((…)), runs nothing unless a substitution is inside it.
    if (c == '$' && next == '(' && i + 2 < text.size() && text[i + 2] == '(') {
      size_t close = MatchingParen(text, i + 1);
      size_t end = close == std::string_view::npos ? text.size() : close;
      std::string_view body = text.substr(i + 3, end > i + 3 ? end - (i + 3) : 0);
      if (body.find("$(") == std::string_view::npos && body.find('`') == std::string_view::npos) {
        current.append(text.substr(i, std::min(text.size(), end + 1) - i));
        i = end;
        continue;
      }
    }
    // Substitutions run in double quotes too.
    if (c == '$' && next == '(') {
      i = Substitution(text, i + 2, MatchingParen(text, i + 1), depth, current, i);
      continue;
    }
    if (c == '`') {
      i = Substitution(text, i + 1, MatchingBacktick(text, i), depth, current, i);
      continue;
    }
    if (c == '$' && next == '{') {
      size_t close = text.find('}', i + 2);
      size_t end = close == std::string_view::npos ? text.size() : close;
      std::string_view body = text.substr(i + 2, end - (i + 2));
      if (IsDangerousExpansion(body)) dangerous = true;
      // "${X:=$(rm x)}": a substitution in the body runs too.
      if (body.find("$(") != std::string_view::npos || body.find('`') != std::string_view::npos) {
        dangerous = true;
        Scan(body, depth + 1);
      }
      current.append(text.substr(i, std::min(text.size(), end + 1) - i));
      i = end;
      continue;
    }
    if (quote == '"') {
      current += c;
      if (c == '"') quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      current += c;
      continue;
    }
    if ((c == '<' || c == '>' || c == '=') && next == '(') {  // <(…) >(…) and zsh =(…)
      i = Substitution(text, i + 2, MatchingParen(text, i + 1), depth, current, i);
      continue;
    }
    if (std::string_view("*?+@!").find(c) != std::string_view::npos &&
        text.substr(i + 1, 3) == "(e:") {  // zsh glob qualifier running code
      dangerous = true;
    }
    if (c == '\n' || c == ';' || c == '(' || c == ')') {
      flush();
      continue;
    }
    if (c == '|') {
      flush();
      if (next == '|' || next == '&') ++i;
      continue;
    }
    if (c == '&') {
      if (next == '&') {
        flush();
        ++i;
        continue;
      }
      char previous = current.empty() ? ' ' : current.back();
      if (next == '>' || previous == '>' || previous == '<') {  // &> 2>&1 <&0 are redirections.
        current += c;
        continue;
      }
      flush();  // Background: another command follows.
      continue;
    }
    current += c;
  }
  flush();
}

// Length of the longest prefix in `prefixes` that `command` starts with ("*" counts 1), or -1.
// The length of the longest of `prefixes` that `command` starts with (case-insensitively), -1
// when none does. With `whole_words`, a prefix must end where a word ends ("echo" is not a prefix
// of "echoX hi").
int LongestMatch(std::string_view command, const std::vector<std::string>& prefixes,
                 bool whole_words) {
  int longest = -1;
  for (const std::string& raw : prefixes) {
    std::string_view prefix = Trim(raw);
    if (prefix.empty()) continue;  // A blank entry must not match everything.
    bool matches = prefix == "*";
    if (!matches && StartsWithIgnoreCase(command, prefix)) {
      matches = !whole_words || command.size() == prefix.size() ||
                std::isspace(static_cast<unsigned char>(command[prefix.size()])) != 0 ||
                std::isspace(static_cast<unsigned char>(prefix.back())) != 0;
    }
    if (matches) longest = std::max(longest, static_cast<int>(prefix == "*" ? 1 : prefix.size()));
  }
  return longest;
}

// The words of one simple command as the shell passes them on: quotes and backslashes removed
// (operators and redirections left out).
std::vector<std::string> ShellWords(std::string_view command) {
  std::vector<std::string> words;
  for (workspace::ShellToken& token : workspace::SplitShellWords(command)) {
    if (!token.is_operator) words.push_back(std::move(token.text));
  }
  return words;
}

std::string JoinWords(std::vector<std::string>::const_iterator begin,
                      std::vector<std::string>::const_iterator end) {
  std::string out;
  for (auto it = begin; it != end; ++it) out += (out.empty() ? "" : " ") + *it;
  return out;
}

// `word` without its directory: "/usr/bin/env" is env.
std::string_view ProgramName(std::string_view word) {
  size_t slash = word.rfind('/');
  return slash == std::string_view::npos ? word : word.substr(slash + 1);
}

bool IsOneOf(std::string_view word, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), word) != names.end();
}

// Programs that run a command given in their arguments: "sudo rm", "timeout -s KILL 5 rm",
// "find . -exec rm {} ;" (for a denial, any of their arguments may start it).
bool IsWrapper(std::string_view word) {
  std::string_view name = ProgramName(word);
  return workspace::IsCommandWrapper(name) ||
         IsOneOf(name, {"xargs", "watch", "busybox", "find", "su", "script", "ssh-agent",
                        "dbus-run-session"});
}

using workspace::IsShellKeyword;  // "{ rm x; }", "if …; then rm x; fi", "! rm x".

bool IsShell(std::string_view word) {
  return IsOneOf(ProgramName(word), {"sh", "bash", "dash", "zsh", "ksh", "ash", "fish"});
}

struct CommandForms {
  std::vector<std::string> forms;       // Each is matched against the denied prefixes.
  // After a wrapper, every tail of its arguments: matched by whole words ("timeout 5 cat
  // rm_notes.txt" is no rm).
  std::vector<std::string> tails;
  std::string script;                   // What a shell runs with -c, or eval's words.
  bool is_program_glob = false;         // "/usr/bin/r[m]", "$x": the shell picks the program.
  bool is_shell_reading_stdin = false;  // "… | sh", "sh <<< …": its commands cannot be seen.
};

// The forms of one command a denied prefix is matched against, so that "rm" denies "\rm x",
// "'rm' x", "/bin/rm x", "FOO=1 rm x", "sudo -u me rm x", "timeout -s KILL 5 rm x" and
// "{ rm x; }", and "git push" denies "git  push" and "git -C . push": the command as written;
// its words joined by single spaces; those words without assignments, keywords and wrappers in
// front, the program named without its directory, with and without its options; and after a
// wrapper, every tail of its arguments (the wrapped command is among them), by whole words.
CommandForms FormsOf(std::string_view command) {
  std::vector<std::string> words = ShellWords(command);
  CommandForms out;
  out.forms = {std::string(command), JoinWords(words.begin(), words.end())};
  size_t first = 0;
  size_t after_wrapper = words.size();  // Where the first wrapper's arguments start.
  while (first < words.size()) {
    const std::string& word = words[first];
    bool is_assignment = word.find('=') != std::string::npos && word[0] != '=' && word[0] != '-';
    if (!is_assignment && !IsShellKeyword(word) && !IsWrapper(word)) break;
    ++first;
    if (word == "function") ++first;  // Its name.
    if (IsWrapper(word) && after_wrapper == words.size()) after_wrapper = first;
    if (!IsWrapper(word)) continue;
    // The wrapper's options, and the one value that "-u user", "-n 5" or "timeout 10" take.
    bool takes_value = ProgramName(word) == "timeout";
    while (first < words.size() && (words[first].starts_with("-") || takes_value)) {
      const std::string& option = words[first++];
      takes_value = IsOneOf(option, {"-u", "-g", "-n", "-c", "-s", "-k", "-C", "-o", "-i", "-e"});
    }
  }
  // A word holding a whole command ("env -S 'curl http://x/y'", "script -c 'curl …'") is named
  // by its first word: the directory stripped from all of it left "y".
  auto named = [](const std::string& word) {
    size_t space = word.find_first_of(" \t");
    if (space == std::string::npos) return std::string(ProgramName(word));
    return std::string(ProgramName(word.substr(0, space))) + word.substr(space);
  };
  for (size_t i = after_wrapper; i < words.size(); ++i) {
    std::string word = words[i];
    // A command given as an option's value in the same word: "--split-string=…",
    // "script --command=…", and env's "-S…" (also after other letters: "-vS…").
    if (word.starts_with("--") && word.find('=') != std::string::npos) {
      word.erase(0, word.find('=') + 1);
    } else if (size_t s = word.find('S'); word.starts_with("-") && s != std::string::npos &&
                                          s + 1 < word.size() &&
                                          ProgramName(words[after_wrapper - 1]) == "env") {
      word.erase(0, s + 1);
    }
    out.tails.push_back(named(word) + " " +
                        JoinWords(words.begin() + static_cast<std::ptrdiff_t>(i) + 1, words.end()));
  }
  if (first >= words.size()) return out;
  std::vector<std::string> rest(words.begin() + static_cast<std::ptrdiff_t>(first), words.end());
  rest[0] = named(rest[0]);
  // Only the shell knows the program a glob, a brace list or a variable names ("r[m]",
  // "{rm,-f,x}", "${x:-rm}").
  out.is_program_glob = rest[0].find_first_of("*?[{$") != std::string::npos;
  out.forms.push_back(JoinWords(rest.begin(), rest.end()));
  // Without options ("git -C dir push" is a git push), an option's value included for the
  // options that take one in front of a subcommand (git -C dir, git -c key=value).
  std::vector<std::string> plain = {rest[0]};
  for (size_t i = 1; i < rest.size(); ++i) {
    if (!rest[i].starts_with("-")) {
      plain.push_back(rest[i]);
    } else if (rest[0] == "git" &&
               IsOneOf(rest[i], {"-C", "-c", "--git-dir", "--work-tree", "--namespace",
                                 "--exec-path", "--super-prefix", "--config-env"})) {
      ++i;  // Its value.
    }
  }
  out.forms.push_back(JoinWords(plain.begin(), plain.end()));
  if (IsShell(rest[0])) {
    bool has_file = false;
    for (size_t i = 1; i < rest.size(); ++i) {
      const std::string& word = rest[i];
      if (word.starts_with("-") && !word.starts_with("--") && word.find('c') != std::string::npos &&
          i + 1 < rest.size()) {
        out.script = rest[i + 1];  // -c, -lc, -ec, …
        break;
      }
      if (IsOneOf(word, {"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})) {
        ++i;  // Its value (bash -O extglob, bash --rcfile FILE).
      } else if (!word.starts_with("-") && !word.starts_with("+")) {
        has_file = true;
        break;
      }
    }
    // "sh < script" and "sh <<< 'rm x'" read their commands from a redirection.
    bool has_input_redirect = command.find('<') != std::string_view::npos;
    out.is_shell_reading_stdin = out.script.empty() && (!has_file || has_input_redirect);
  }
  if (rest[0] == "eval") out.script = JoinWords(rest.begin() + 1, rest.end());
  // trap's action runs when the signal comes, or when the shell exits: "trap 'rm x' EXIT".
  if (rest[0] == "trap") {
    size_t action = 1;
    while (action < rest.size() && rest[action].starts_with("-") && rest[action] != "-") {
      if (rest[action++] == "--") break;
    }
    if (action < rest.size()) out.script = rest[action];
  }
  return out;
}

Decision DecideLine(std::string_view command, const std::vector<std::string>& allowed,
                    const std::vector<std::string>& denied, int depth);

// A denied prefix wins over a shorter allowed one; an allowed prefix must match whole words of
// the command as written (or with its quoting and spacing normalised), a denied one any form.
// A shell's -c script (and eval's) is decided as a command line of its own: a denial inside
// denies; nested deeper than a few shells, a deny list denies outright.
Decision DecideSingle(std::string_view command, const std::vector<std::string>& allowed,
                      const std::vector<std::string>& denied, int depth) {
  CommandForms of = FormsOf(command);
  const std::vector<std::string>& forms = of.forms;
  if (!denied.empty()) {
    // A shell reading its commands from a pipe or here-string runs what no list can check.
    if (of.is_shell_reading_stdin || of.is_program_glob) return Decision::kDeny;
    constexpr int kMaxShellDepth = 4;
    if (!of.script.empty() &&
        (depth >= kMaxShellDepth ||
         DecideLine(of.script, allowed, denied, depth + 1) == Decision::kDeny)) {
      return Decision::kDeny;
    }
  }
  int allow = std::max(LongestMatch(forms[0], allowed, /*whole_words=*/true),
                       LongestMatch(forms[1], allowed, /*whole_words=*/true));
  int deny = -1;
  for (const std::string& form : forms) {
    deny = std::max(deny, LongestMatch(form, denied, /*whole_words=*/false));
  }
  for (const std::string& tail : of.tails) {
    deny = std::max(deny, LongestMatch(tail, denied, /*whole_words=*/true));
  }
  if (allow < 0 && deny < 0) return Decision::kAsk;
  return allow > deny ? Decision::kApprove : Decision::kDeny;
}

// The command without fd redirections like 2>&1 or >&2.
std::string WithoutFdRedirections(std::string_view command) {
  std::string out;
  out.reserve(command.size());
  for (size_t i = 0; i < command.size();) {
    size_t j = i;
    while (j < command.size() && std::isdigit(static_cast<unsigned char>(command[j]))) ++j;
    if (command.substr(j, 2) == ">&") {
      j += 2;
      while (j < command.size() && std::isdigit(static_cast<unsigned char>(command[j]))) ++j;
      i = j;
      continue;
    }
    out += command[i];
    ++i;
  }
  return std::string(Trim(out));
}

std::string CanonicalArguments(std::string_view arguments_json) {
  nlohmann::json parsed =
      nlohmann::json::parse(arguments_json, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return std::string(Trim(arguments_json));
  // Objects are ordered by key, so equal arguments dump equally.
  return parsed.dump();
}

bool IsReadTool(std::string_view tool) {
  return tool == "read_file" || tool == "list_files" || tool == "search_files" ||
         tool == "list_code_definition_names" || tool == "codebase_search";
}

// Cents, or four decimals below a dollar (a limit of $0.001 read as "$0.00").
std::string FormatUsd(double amount) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), amount < 1 ? "$%.4f" : "$%.2f", amount);
  return buffer;
}

Decision ApproveIf(bool condition) { return condition ? Decision::kApprove : Decision::kAsk; }

Decision DecideLine(std::string_view command, const std::vector<std::string>& allowed,
                    const std::vector<std::string>& denied, int depth) {
  CommandScanner scanner;
  scanner.Scan(command, 0);
  if (scanner.commands.empty()) return Decision::kAsk;
  bool all_approved = true;
  for (const std::string& sub : scanner.commands) {
    // Match with and without fd redirections, so "npm test 2>&1" can use the prefix
    // "npm test" and a listed "make 2>&1" still matches itself (Kilo does the same).
    Decision as_is = DecideSingle(sub, allowed, denied, depth);
    Decision stripped = DecideSingle(WithoutFdRedirections(sub), allowed, denied, depth);
    if (as_is == Decision::kDeny || stripped == Decision::kDeny) return Decision::kDeny;
    if (as_is != Decision::kApprove && stripped != Decision::kApprove) all_approved = false;
  }
  if (scanner.dangerous) return Decision::kAsk;
  return all_approved ? Decision::kApprove : Decision::kAsk;
}

}  // namespace

std::vector<std::string> SplitCommand(std::string_view command) {
  CommandScanner scanner;
  scanner.Scan(command, 0);
  return std::move(scanner.commands);
}

bool HasDangerousSubstitution(std::string_view command) {
  CommandScanner scanner;
  scanner.Scan(command, 0);
  return scanner.dangerous;
}

Decision DecideCommand(std::string_view command, const std::vector<std::string>& allowed,
                       const std::vector<std::string>& denied) {
  return DecideLine(command, allowed, denied, 0);
}

bool IsWriteRequest(const ApprovalRequest& request) {
  return request.kind == ApprovalKind::kWrite || request.kind == ApprovalKind::kProtected ||
         (request.kind == ApprovalKind::kOutsideWorkspace && !IsReadTool(request.tool));
}

bool IsRejectedAlways(const std::set<ApprovalKind>& rejected, const ApprovalRequest& request) {
  if (rejected.count(request.kind) != 0) return true;
  return IsWriteRequest(request) && request.tool != "delete_file" &&
         rejected.count(ApprovalKind::kWrite) != 0;
}

void GrantAlways(AutoApproveSettings& settings, const ApprovalRequest& request) {
  switch (request.kind) {
    case ApprovalKind::kRead:
      settings.read = true;
      break;
    case ApprovalKind::kWrite:
      settings.write = true;
      break;
    case ApprovalKind::kDelete:
      settings.delete_files = true;
      break;
    case ApprovalKind::kOutsideWorkspace:
      (IsWriteRequest(request) ? settings.write_outside_workspace
                               : settings.read_outside_workspace) = true;
      break;
    case ApprovalKind::kProtected:
      settings.write_protected = true;
      break;
    case ApprovalKind::kCommand:
      // Each part, as each is decided ("always" for "make && make test" is for both); but not
      // a bare shell or interpreter, nor a wrapper, which run whatever they are given ("always"
      // for "ls | sh" is not for every script piped to sh).
      for (std::string& part : SplitCommand(request.target)) {
        std::vector<std::string> words = ShellWords(part);
        if (words.empty() || IsWrapper(words[0]) ||
            (words.size() == 1 &&
             (IsShell(words[0]) ||
              IsOneOf(ProgramName(words[0]), {"python", "python3", "node", "perl", "ruby", "php",
                                              "eval", "source", ".", "deno", "bun", "lua"})))) {
          continue;
        }
        auto& granted = settings.granted_commands;
        if (std::find(granted.begin(), granted.end(), part) == granted.end()) {
          granted.push_back(std::move(part));
        }
      }
      break;
  }
}

std::string_view ApprovalKindName(ApprovalKind kind) {
  switch (kind) {
    case ApprovalKind::kRead:
      return "read";
    case ApprovalKind::kWrite:
      return "write";
    case ApprovalKind::kDelete:
      return "delete";
    case ApprovalKind::kOutsideWorkspace:
      return "outside";
    case ApprovalKind::kProtected:
      return "protected";
    case ApprovalKind::kCommand:
      return "command";
  }
  return "?";
}

std::optional<ApprovalKind> ParseApprovalKind(std::string_view name) {
  for (ApprovalKind kind :
       {ApprovalKind::kRead, ApprovalKind::kWrite, ApprovalKind::kDelete,
        ApprovalKind::kOutsideWorkspace, ApprovalKind::kProtected, ApprovalKind::kCommand}) {
    if (ApprovalKindName(kind) == name) return kind;
  }
  return std::nullopt;
}

Decision Decide(const ApprovalRequest& request, const AutoApproveSettings& settings) {
  if (!settings.enabled) return Decision::kAsk;
  const bool is_delete = request.tool == "delete_file";
  switch (request.kind) {
    case ApprovalKind::kRead:
      return ApproveIf(settings.read);
    case ApprovalKind::kWrite:
      return ApproveIf(settings.write);
    case ApprovalKind::kDelete:
      return ApproveIf(settings.delete_files);
    case ApprovalKind::kProtected:
      return ApproveIf((is_delete ? settings.delete_files : settings.write) &&
                       settings.write_protected);
    case ApprovalKind::kOutsideWorkspace:
      if (IsReadTool(request.tool)) {
        return ApproveIf(settings.read && settings.read_outside_workspace);
      }
      // Unknown tools are held to the stricter write rule.
      return ApproveIf((is_delete ? settings.delete_files : settings.write) &&
                       settings.write_outside_workspace);
    case ApprovalKind::kCommand: {
      if (!settings.execute && settings.granted_commands.empty()) return Decision::kAsk;
      const std::vector<std::string>* allowed = &settings.allowed_commands;
      std::vector<std::string> with_granted;
      if (!settings.granted_commands.empty()) {
        with_granted = settings.granted_commands;
        if (settings.execute) {
          with_granted.insert(with_granted.end(), settings.allowed_commands.begin(),
                              settings.allowed_commands.end());
        }
        allowed = &with_granted;
      }
      Decision decision = DecideCommand(request.target, *allowed, settings.denied_commands);
      if (decision == Decision::kAsk && settings.execute && settings.substitutions &&
          settings.denied_commands.empty() && HasDangerousSubstitution(request.target) &&
          std::find(settings.allowed_commands.begin(), settings.allowed_commands.end(), "*") !=
              settings.allowed_commands.end()) {
        decision = Decision::kApprove;
      }
      bool reaches_beyond =
          (!request.outside_paths.empty() && !settings.write_outside_workspace) ||
          (!request.protected_paths.empty() && !settings.write_protected) ||
          (!request.written_paths.empty() && !settings.write) ||
          (!request.outside_reads.empty() && !(settings.read && settings.read_outside_workspace));
      return decision == Decision::kApprove && reaches_beyond ? Decision::kAsk : decision;
    }
  }
  return Decision::kAsk;
}

Decision Decide(SessionApprovalKind kind, const AutoApproveSettings& settings) {
  if (!settings.enabled) return Decision::kAsk;
  switch (kind) {
    case SessionApprovalKind::kModeSwitch:
      return ApproveIf(settings.mode_switch);
    case SessionApprovalKind::kSubtask:
    case SessionApprovalKind::kFinishSubtask:
      return ApproveIf(settings.subtasks);
    case SessionApprovalKind::kFollowupQuestion:
      return ApproveIf(settings.followup_questions && settings.followup_timeout_ms > 0);
    case SessionApprovalKind::kTodoUpdate:
      return Decision::kApprove;
    case SessionApprovalKind::kMcp:
      return ApproveIf(settings.mcp);
  }
  return Decision::kAsk;
}

std::optional<LimitReached> ApprovalLimits::Check(const AutoApproveSettings& settings) const {
  if (settings.max_requests > 0 && requests_since_reset_ + 1 > settings.max_requests) {
    return LimitReached{LimitReached::Kind::kRequests,
                        "Reached the limit of " + std::to_string(settings.max_requests) +
                            (settings.max_requests == 1 ? " model request" : " model requests") +
                            " without asking (approvals.max_requests)."};
  }
  double spent = cost_since_reset_usd_;
  if (settings.max_cost_usd > 0 && spent > settings.max_cost_usd) {
    return LimitReached{LimitReached::Kind::kCost, "Reached the cost limit of " +
                                                       FormatUsd(settings.max_cost_usd) +
                                                       " (spent " + FormatUsd(spent) +
                                                       " without asking; approvals.max_cost_usd)."};
  }
  return std::nullopt;
}

bool ToolRepetitionDetector::Check(std::string_view tool_name, std::string_view arguments_json) {
  std::string key(tool_name);
  key += '\n';
  key += CanonicalArguments(arguments_json);
  if (key == previous_) {
    ++repeats_;
  } else {
    previous_ = std::move(key);
    repeats_ = 0;
  }
  if (limit_ > 0 && repeats_ >= limit_) {
    Reset();
    return false;
  }
  return true;
}

void ToolRepetitionDetector::Reset() {
  previous_.clear();
  repeats_ = 0;
}

std::string ToolRepetitionText(std::string_view tool_name) {
  return "The model seems to be stuck in a loop: it called " + std::string(tool_name) +
         " with the same arguments several times in a row. Reply with guidance to continue: "
         "rephrase the task, give more specific instructions, or point it to a different "
         "approach.";
}

}  // namespace lai::agent
