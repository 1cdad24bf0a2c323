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

// What a type asks of a core (array/array.hpp, htab/htab.hpp) at creation,
// after its own checks; array::params adds what only arrays take.
struct core_params {
	uint32_t magic;         // the type's map_ops::state_magic
	uint32_t version;       // the type's map_ops::state_version
	uint32_t slot_size;     // bytes stored per element; value_size when 0
	uint32_t allowed_flags; // map_flags the type takes

	// The bytes each element stores for a map created with a.
	uint32_t slot_for(const handlers::map_create_args *a) const
	{
		return slot_size ? slot_size : a->value_size;
	}
};

// Copies the attributes every core's state keeps as create() got them; the
// caller (a core's create()) does it before the state is published.
template <class State>
void keep_create_args(State *s, const handlers::map_create_args *a)
{
	s->key_size = a->key_size;
	s->value_size = a->value_size;
	s->max_entries = a->max_entries;
	s->map_flags = a->map_flags;
}

// The checks both cores' create() make after their key size check (the
// kernel's array_map_alloc_check and htab_map_alloc_check agree on these):
// a value, at least one entry, and no map_flags bit outside
// p.allowed_flags. `kind` names the maps in the message ("arrays"). 0, or
// -EINVAL with a message in err.
inline int check_create_args(const handlers::map_create_args *a,
			     const core_params &p, const char *kind, char *err,
			     size_t err_len)
{
	if (a->value_size == 0)
		return set_error(err, err_len, EINVAL, "value size is 0");
	if (a->max_entries == 0)
		return set_error(err, err_len, EINVAL, "max_entries is 0");
	if (a->map_flags & ~p.allowed_flags)
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x has bits %s do not take "
				 "(allowed: 0x%x)",
				 a->map_flags, kind, p.allowed_flags);
	return 0;
}

} // namespace bpftime::maps_userspace
