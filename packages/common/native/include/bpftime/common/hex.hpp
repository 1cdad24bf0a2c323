// hex.hpp: one hex digit's value, for the readers of hex text (the registry's
// JSON bytes, the conformance plugin's programs).
#pragma once

namespace bpftime {

// 0-15 for [0-9a-fA-F], -1 for any other character.
constexpr int hex_digit(char c) noexcept
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

} // namespace bpftime
