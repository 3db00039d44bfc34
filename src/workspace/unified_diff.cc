#include "workspace/unified_diff.h"

#include <algorithm>
#include <vector>

namespace lai::workspace {
namespace {

// Lines including their '\n', so that a last line without one differs from the same text with
// one (and the diff shows the change of the final newline).
std::vector<std::string_view> SplitKeepingNewlines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    end = end == std::string_view::npos ? text.size() : end + 1;
    lines.push_back(text.substr(begin, end - begin));
    begin = end;
  }
  return lines;
}

enum class Op : char { kEqual = ' ', kDelete = '-', kInsert = '+' };

// Myers 1986, greedy forward pass keeping each round's frontier for the backtrack. Appends the
// edit script turning a into b to `ops`; false when more than max_edits edits are needed.
bool MyersScript(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b,
                 int max_edits, std::vector<Op>& ops) {
  const int n = static_cast<int>(a.size());
  const int m = static_cast<int>(b.size());
  const int limit = std::min(n + m, max_edits);
  const int offset = limit + 1;
  std::vector<int> v(2 * static_cast<size_t>(limit) + 3, 0);
  std::vector<std::vector<int>> trace;  // trace[d] = frontier x for k in [-d, d] before round d.
  int found = -1;
  for (int d = 0; d <= limit && found < 0; ++d) {
    trace.emplace_back(v.begin() + (offset - d), v.begin() + (offset + d + 1));
    for (int k = -d; k <= d; k += 2) {
      int x;
      if (k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1])) {
        x = v[offset + k + 1];
      } else {
        x = v[offset + k - 1] + 1;
      }
      int y = x - k;
      while (x < n && y < m && a[x] == b[y]) {
        ++x;
        ++y;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
  }
  if (found < 0) return false;
  // Backtrack from (n, m).
  std::vector<Op> reversed;
  int x = n;
  int y = m;
  for (int d = found; d > 0; --d) {
    const std::vector<int>& frontier = trace[d];  // Values for k in [-d, d]... of round d-1.
    auto at = [&](int k) { return frontier[k + d]; };
    const int k = x - y;
    int previous_k;
    if (k == -d || (k != d && at(k - 1) < at(k + 1))) {
      previous_k = k + 1;
    } else {
      previous_k = k - 1;
    }
    const int previous_x = at(previous_k);
    const int previous_y = previous_x - previous_k;
    while (x > previous_x && y > previous_y) {
      reversed.push_back(Op::kEqual);
      --x;
      --y;
    }
    if (previous_k == k + 1) {
      reversed.push_back(Op::kInsert);
      --y;
    } else {
      reversed.push_back(Op::kDelete);
      --x;
    }
  }
  while (x > 0 && y > 0) {
    reversed.push_back(Op::kEqual);
    --x;
    --y;
  }
  ops.insert(ops.end(), reversed.rbegin(), reversed.rend());
  return true;
}

void AppendLine(std::string& out, char op, std::string_view line) {
  out += op;
  if (!line.empty() && line.back() == '\n') {
    out += line;
  } else {
    out += line;
    out += "\n\\ No newline at end of file\n";
  }
}

std::string Range(int start, int count) {
  // GNU convention: an empty range names the line before it.
  return std::to_string(count == 0 ? start : start + 1) + "," + std::to_string(count);
}

}  // namespace

std::string UnifiedDiff(std::string_view path, std::string_view before, std::string_view after,
                        int context_lines, int max_edit_lines) {
  if (before == after) return {};
  const std::vector<std::string_view> a = SplitKeepingNewlines(before);
  const std::vector<std::string_view> b = SplitKeepingNewlines(after);
  size_t prefix = 0;
  while (prefix < a.size() && prefix < b.size() && a[prefix] == b[prefix]) ++prefix;
  size_t suffix = 0;
  while (suffix < a.size() - prefix && suffix < b.size() - prefix &&
         a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix]) {
    ++suffix;
  }
  std::vector<Op> ops(prefix, Op::kEqual);
  const std::vector<std::string_view> a_middle(a.begin() + prefix, a.end() - suffix);
  const std::vector<std::string_view> b_middle(b.begin() + prefix, b.end() - suffix);
  if (!MyersScript(a_middle, b_middle, max_edit_lines, ops)) {
    ops.insert(ops.end(), a_middle.size(), Op::kDelete);
    ops.insert(ops.end(), b_middle.size(), Op::kInsert);
  }
  ops.insert(ops.end(), suffix, Op::kEqual);

  // Positions of each op in a and b.
  const int total = static_cast<int>(ops.size());
  std::vector<int> a_at(total + 1);
  std::vector<int> b_at(total + 1);
  for (int i = 0, x = 0, y = 0; i <= total; ++i) {
    a_at[i] = x;
    b_at[i] = y;
    if (i == total) break;
    if (ops[i] != Op::kInsert) ++x;
    if (ops[i] != Op::kDelete) ++y;
  }

  std::string out = "--- a/" + std::string(path) + "\n+++ b/" + std::string(path) + "\n";
  const int context = std::max(0, context_lines);
  int i = 0;
  while (i < total) {
    while (i < total && ops[i] == Op::kEqual) ++i;
    if (i == total) break;
    // A hunk: from `context` equal lines before the first change to `context` after the last
    // change that is followed by fewer than 2 * context + 1 equal lines.
    const int hunk_begin = std::max(0, i - context);
    int last_change = i;
    int j = i;
    while (j < total) {
      if (ops[j] != Op::kEqual) {
        last_change = j;
        ++j;
        continue;
      }
      int run = j;
      while (run < total && ops[run] == Op::kEqual) ++run;
      if (run == total || run - j > 2 * context) break;
      j = run;
    }
    const int hunk_end = std::min(total, last_change + 1 + context);
    out += "@@ -" + Range(a_at[hunk_begin], a_at[hunk_end] - a_at[hunk_begin]) + " +" +
           Range(b_at[hunk_begin], b_at[hunk_end] - b_at[hunk_begin]) + " @@\n";
    for (int k = hunk_begin; k < hunk_end; ++k) {
      switch (ops[k]) {
        case Op::kEqual:
          AppendLine(out, ' ', a[a_at[k]]);
          break;
        case Op::kDelete:
          AppendLine(out, '-', a[a_at[k]]);
          break;
        case Op::kInsert:
          AppendLine(out, '+', b[b_at[k]]);
          break;
      }
    }
    i = hunk_end;
  }
  return out;
}

}  // namespace lai::workspace
