// Small string helpers shared by every module. Pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hv {

std::vector<std::string> split(std::string_view s, char sep);
bool startsWith(std::string_view s, std::string_view prefix);
// Replaces every occurrence of `from` in `s` with `to`.
std::string replaceAll(std::string s, std::string_view from, std::string_view to);
// Parses a whole decimal integer in [lo, hi]; false on any junk or overflow.
bool parseInt(std::string_view s, long long lo, long long hi, long long* out);

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no
// overlongs, no surrogates, nothing past U+10FFFF), or 0 if there is none.
// REQUIRES: i < s.size().
size_t utf8SequenceAt(std::string_view s, size_t i);
// `s` with every byte that starts no well-formed sequence replaced by U+FFFD,
// so any JSON parser accepts it. Returns `s` unchanged (one scan) when valid.
std::string toValidUtf8(std::string_view s);
// For a terminal: toValidUtf8, and every control character (C0 but tab and,
// if `keepNewlines`, newline; DEL; C1) written visibly as "\xHH" so a
// program's output cannot move the cursor, recolour or rewrite what an admin
// reads (ESC sequences, a bare CR over a line).
std::string printable(std::string_view s, bool keepNewlines);

}  // namespace hv
