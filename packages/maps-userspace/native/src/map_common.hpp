// map_common.hpp: pieces every map type of this package shares. Not public.
#pragma once

#include <bpftime/handlers/map_ops.hpp>
#include <bpftime/shm/segment.hpp>

#include <cerrno>
#include <cstdarg>
#include <cstdio>

namespace bpftime::maps_userspace {

// The package every map_ops table of this package names as its provider (and
// that package.json's "bpftime.mapTypes" declares).
inline constexpr const char *PROVIDER = "@bpftime/maps-userspace";

// Writes the message a create function returns with its errno (the
// registry prefixes "map 'name': create: E2BIG: ").
[[gnu::format(printf, 4, 5)]] inline int set_error(char *err, size_t err_len,
						    int e, const char *fmt, ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return -e;
}

} // namespace bpftime::maps_userspace
