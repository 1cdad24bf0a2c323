// json_value.hpp: the small JSON reader and writer behind the registry's
// export and import (json_io.cpp). Not a public header.
//
// Numbers keep their text, so 64-bit integers survive exactly; the registry's
// own documents write u64 fields as decimal strings anyway, because
// JavaScript's JSON.parse would round them.
#pragma once

#include <bpftime/common/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bpftime::handlers::json {

struct value {
	enum class type { null, boolean, number, string, array, object };
	type t = type::null;
	bool b = false;
	std::string s; // string contents, or the number's text
	std::vector<value> a;
	std::vector<std::pair<std::string, value>> o;

	const value *get(std::string_view key) const noexcept
	{
		for (const auto &[k, v] : o)
			if (k == key)
				return &v;
		return nullptr;
	}
};

// EINVAL with "line L, column C: <what>" on malformed input; nesting is
// limited to 64 levels.
result<value> parse(std::string_view text);

// Appends a JSON string literal.
void write_string(std::string &out, std::string_view s);

} // namespace bpftime::handlers::json
