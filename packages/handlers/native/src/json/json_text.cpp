// json_text.cpp: parse() on nlohmann-json, and the string writers
// (json_text.hpp says why each is what it is).
#include "json/json_text.hpp"

#include <set>
#include <vector>

#include <cerrno>
#include <cstdio>
#include <exception>

namespace bpftime::handlers::json {
namespace {

struct too_deep {};

// nlohmann's message without its "[json.exception.parse_error.101] parse
// error at " prefix: "line 1, column 1: syntax error while parsing value -
// invalid literal; last read: 't'".
std::string reason(const char *what)
{
	std::string_view w(what);
	constexpr std::string_view at = "parse error at ";
	if (auto i = w.find(at); i != std::string_view::npos)
		return std::string(w.substr(i + at.size()));
	if (auto i = w.find("] "); i != std::string_view::npos)
		return std::string(w.substr(i + 2));
	return std::string(w);
}

} // namespace

struct duplicate_name {
	std::string name;
};

result<value> parse(std::string_view text) noexcept
{
	try {
		// The callback sees the depth of each value as it is read;
		// throwing ends the parse, and the exception ends here.
		// A name given twice in one object would have its first value
		// dropped without a word (nlohmann keeps the last): refused.
		std::vector<std::set<std::string>> names;
		value::parser_callback_t limit =
			[&names](int depth, value::parse_event_t event,
				 value &parsed) {
				if (depth > MAX_DEPTH)
					throw too_deep{};
				using ev = value::parse_event_t;
				if (event == ev::object_start)
					names.emplace_back();
				else if (event == ev::object_end && !names.empty())
					names.pop_back();
				else if (event == ev::key && !names.empty() &&
					 parsed.is_string() &&
					 !names.back()
						  .insert(parsed.get<std::string>())
						  .second)
					throw duplicate_name{
						parsed.get<std::string>()
					};
				return true;
			};
		return value::parse(text.begin(), text.end(), limit);
	} catch (const duplicate_name &d) {
		return fail(EINVAL, "the name \"" + d.name +
					    "\" appears twice in one object");
	} catch (const too_deep &) {
		return fail(EINVAL, "nested more than " +
					    std::to_string(MAX_DEPTH) +
					    " levels deep");
	} catch (const nlohmann::json::exception &e) {
		return fail(EINVAL, reason(e.what()));
	} catch (const std::exception &e) {
		// std::bad_alloc for a document larger than memory.
		return fail(ENOMEM, std::string("reading the document: ") +
					    e.what());
	}
}

void write_string(std::string &out, std::string_view s)
{
	out += '"';
	for (char c : s) {
		switch (c) {
		case '"':
			out += "\\\"";
			break;
		case '\\':
			out += "\\\\";
			break;
		case '\n':
			out += "\\n";
			break;
		case '\r':
			out += "\\r";
			break;
		case '\t':
			out += "\\t";
			break;
		default:
			if (uint8_t(c) < 0x20) {
				char buf[8];
				snprintf(buf, sizeof(buf), "\\u%04x",
					 unsigned(uint8_t(c)));
				out += buf;
			} else {
				out += c;
			}
		}
	}
	out += '"';
}

void write_hex(std::string &out, const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const auto *p = static_cast<const uint8_t *>(data);
	out += '"';
	for (size_t i = 0; i < len; i++) {
		out += digits[p[i] >> 4];
		out += digits[p[i] & 15];
	}
	out += '"';
}

} // namespace bpftime::handlers::json
