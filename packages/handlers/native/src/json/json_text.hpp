// json_text.hpp: the text layer of the registry's JSON document (json.hpp):
// parsing with nlohmann-json, and the few writers the exporter needs. Not a
// public header; only json_io.cpp includes it.
//
// Why a library for reading and our own lines for writing:
// - Reading is where JSON is hard (escapes, surrogates, numbers, nesting,
//   every malformed input): nlohmann-json (Debian's nlohmann-json3-dev) does
//   it, keeps integers as uint64_t / int64_t without passing them through
//   double, and is iterative, so a deep document cannot overflow the stack.
//   Exceptions it throws stop in parse(); everything else reads the tree with
//   checked accessors (is_*() before get()), which do not throw.
// - Writing stays here because the document's text is fixed by the files
//   users already have: ", " and ": " separators, one handler per line,
//   control characters as \u00XX except \n \r \t, other bytes as they are.
//   nlohmann's dump() writes another layout, escapes \b and \f by name and
//   throws on a string that is not UTF-8 (a path may be any bytes).
//   What the exporter writes is only objects of scalars, hex strings and
//   arrays of numbers, so the writer is a handful of lines.
//
// One difference with the parser of old: nlohmann refuses a string that is
// not valid UTF-8 (EINVAL, with line and column), where the old reader took
// the bytes as they were.
#pragma once

#include <bpftime/common/result.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace bpftime::handlers::json {

using value = nlohmann::json;

// Nesting allowed in a document; the registry's is 4 deep.
inline constexpr int MAX_DEPTH = 64;

// EINVAL with "line L, column C: <what>" on malformed input, or "nested more
// than 64 levels deep". Never throws.
result<value> parse(std::string_view text) noexcept;

// Appends a JSON string literal (the escaping described above).
void write_string(std::string &out, std::string_view s);

// Appends bytes as a lower-case hex string literal.
void write_hex(std::string &out, const void *data, size_t len);

} // namespace bpftime::handlers::json
