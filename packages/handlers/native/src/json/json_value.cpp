// json_value.cpp: a strict RFC 8259 reader (no comments, no trailing commas)
// and the string escaper of the writer.
#include "json/json_value.hpp"

#include <cerrno>
#include <cstdio>

namespace bpftime::handlers::json {
namespace {

class reader {
    public:
	explicit reader(std::string_view t) : t_(t)
	{
	}

	result<value> document()
	{
		value v;
		BPFTIME_TRY(parse_value(v, 0));
		skip_ws();
		if (pos_ != t_.size())
			return error("unexpected text after the document");
		return v;
	}

    private:
	std::string_view t_;
	size_t pos_ = 0;

	failure error(const std::string &what) const
	{
		size_t line = 1, col = 1;
		for (size_t i = 0; i < pos_ && i < t_.size(); i++) {
			if (t_[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		return fail(EINVAL, "line " + std::to_string(line) + ", column " +
					    std::to_string(col) + ": " + what);
	}

	void skip_ws()
	{
		while (pos_ < t_.size() && (t_[pos_] == ' ' || t_[pos_] == '\t' ||
					    t_[pos_] == '\n' || t_[pos_] == '\r'))
			pos_++;
	}

	bool literal(std::string_view word)
	{
		if (t_.substr(pos_, word.size()) != word)
			return false;
		pos_ += word.size();
		return true;
	}

	status parse_value(value &v, int depth)
	{
		if (depth > 64)
			return error("nested more than 64 levels deep");
		skip_ws();
		if (pos_ >= t_.size())
			return error("unexpected end of input");
		char c = t_[pos_];
		if (c == '{')
			return parse_object(v, depth);
		if (c == '[')
			return parse_array(v, depth);
		if (c == '"') {
			v.t = value::type::string;
			return parse_string(v.s);
		}
		if (c == '-' || (c >= '0' && c <= '9'))
			return parse_number(v);
		if (literal("true")) {
			v.t = value::type::boolean;
			v.b = true;
			return {};
		}
		if (literal("false")) {
			v.t = value::type::boolean;
			return {};
		}
		if (literal("null")) {
			v.t = value::type::null;
			return {};
		}
		return error(std::string("unexpected character '") + c + "'");
	}

	status parse_object(value &v, int depth)
	{
		v.t = value::type::object;
		pos_++;
		skip_ws();
		if (pos_ < t_.size() && t_[pos_] == '}') {
			pos_++;
			return {};
		}
		for (;;) {
			skip_ws();
			if (pos_ >= t_.size() || t_[pos_] != '"')
				return error("expected a member name");
			std::string key;
			BPFTIME_TRY(parse_string(key));
			skip_ws();
			if (pos_ >= t_.size() || t_[pos_] != ':')
				return error("expected ':' after member name");
			pos_++;
			value member;
			BPFTIME_TRY(parse_value(member, depth + 1));
			v.o.emplace_back(std::move(key), std::move(member));
			skip_ws();
			if (pos_ < t_.size() && t_[pos_] == ',') {
				pos_++;
				continue;
			}
			if (pos_ < t_.size() && t_[pos_] == '}') {
				pos_++;
				return {};
			}
			return error("expected ',' or '}'");
		}
	}

	status parse_array(value &v, int depth)
	{
		v.t = value::type::array;
		pos_++;
		skip_ws();
		if (pos_ < t_.size() && t_[pos_] == ']') {
			pos_++;
			return {};
		}
		for (;;) {
			value item;
			BPFTIME_TRY(parse_value(item, depth + 1));
			v.a.push_back(std::move(item));
			skip_ws();
			if (pos_ < t_.size() && t_[pos_] == ',') {
				pos_++;
				continue;
			}
			if (pos_ < t_.size() && t_[pos_] == ']') {
				pos_++;
				return {};
			}
			return error("expected ',' or ']'");
		}
	}

	static void put_utf8(std::string &out, uint32_t cp)
	{
		if (cp < 0x80) {
			out += char(cp);
		} else if (cp < 0x800) {
			out += char(0xc0 | cp >> 6);
			out += char(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			out += char(0xe0 | cp >> 12);
			out += char(0x80 | ((cp >> 6) & 0x3f));
			out += char(0x80 | (cp & 0x3f));
		} else {
			out += char(0xf0 | cp >> 18);
			out += char(0x80 | ((cp >> 12) & 0x3f));
			out += char(0x80 | ((cp >> 6) & 0x3f));
			out += char(0x80 | (cp & 0x3f));
		}
	}

	result<uint32_t> hex4()
	{
		if (pos_ + 4 > t_.size())
			return error("truncated \\u escape");
		uint32_t v = 0;
		for (int i = 0; i < 4; i++) {
			char c = t_[pos_++];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= uint32_t(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= uint32_t(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= uint32_t(c - 'A' + 10);
			else
				return error("bad \\u escape");
		}
		return v;
	}

	status parse_string(std::string &out)
	{
		pos_++; // opening quote
		for (;;) {
			if (pos_ >= t_.size())
				return error("unterminated string");
			char c = t_[pos_++];
			if (c == '"')
				return {};
			if (uint8_t(c) < 0x20)
				return error("control character in string");
			if (c != '\\') {
				out += c;
				continue;
			}
			if (pos_ >= t_.size())
				return error("unterminated string");
			char e = t_[pos_++];
			switch (e) {
			case '"':
			case '\\':
			case '/':
				out += e;
				break;
			case 'b':
				out += '\b';
				break;
			case 'f':
				out += '\f';
				break;
			case 'n':
				out += '\n';
				break;
			case 'r':
				out += '\r';
				break;
			case 't':
				out += '\t';
				break;
			case 'u': {
				auto cp = hex4();
				if (!cp)
					return std::move(cp).error();
				uint32_t v = *cp;
				if (v >= 0xd800 && v < 0xdc00) {
					if (!literal("\\u"))
						return error("lone surrogate");
					auto lo = hex4();
					if (!lo)
						return std::move(lo).error();
					if (*lo < 0xdc00 || *lo >= 0xe000)
						return error("bad surrogate pair");
					v = 0x10000 + ((v - 0xd800) << 10) +
					    (*lo - 0xdc00);
				} else if (v >= 0xdc00 && v < 0xe000) {
					return error("lone surrogate");
				}
				put_utf8(out, v);
				break;
			}
			default:
				return error(std::string("bad escape '\\") + e + "'");
			}
		}
	}

	status parse_number(value &v)
	{
		size_t start = pos_;
		if (t_[pos_] == '-')
			pos_++;
		auto digits = [&] {
			size_t s = pos_;
			while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9')
				pos_++;
			return pos_ - s;
		};
		if (pos_ < t_.size() && t_[pos_] == '0') {
			pos_++;
		} else if (digits() == 0) {
			return error("bad number");
		}
		if (pos_ < t_.size() && t_[pos_] == '.') {
			pos_++;
			if (digits() == 0)
				return error("bad number");
		}
		if (pos_ < t_.size() && (t_[pos_] == 'e' || t_[pos_] == 'E')) {
			pos_++;
			if (pos_ < t_.size() && (t_[pos_] == '+' || t_[pos_] == '-'))
				pos_++;
			if (digits() == 0)
				return error("bad number");
		}
		v.t = value::type::number;
		v.s = std::string(t_.substr(start, pos_ - start));
		return {};
	}
};

} // namespace

result<value> parse(std::string_view text)
{
	return reader(text).document();
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
				snprintf(buf, sizeof(buf), "\\u%04x", unsigned(uint8_t(c)));
				out += buf;
			} else {
				out += c;
			}
		}
	}
	out += '"';
}

} // namespace bpftime::handlers::json
