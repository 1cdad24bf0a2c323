// records.hpp: the copy of a handler's fields between its plain spec
// (registry.hpp, process memory) and its handler in the segment (handler.hpp),
// generated from the field lists of fields.hpp. Not a public header.
//
//   copy_in(handler, spec)    on create, under the registry mutex, into a
//                             handler that is not published yet; throws
//                             std::bad_alloc (boost's) when a segment
//                             container cannot grow: the caller frees the
//                             handler and reports ENOMEM
//   copy_out(handler, spec)   on describe, under the registry mutex
//
// Fields of role `state` and `derived` are not copied in: the registry sets
// them itself (a map's frozen flag by freeze(), a prog's map ids by its
// create step).
#pragma once

#include <bpftime/handlers/fields.hpp>
#include <bpftime/handlers/handler.hpp>
#include <bpftime/handlers/registry.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace bpftime::handlers::records {

// --- one value, spec -> segment ---------------------------------------------

inline void put(uint32_t &d, uint32_t s)
{
	d = s;
}
inline void put(int32_t &d, int32_t s)
{
	d = s;
}
inline void put(uint64_t &d, uint64_t s)
{
	d = s;
}
inline void put(uint32_t &d, bool s)
{
	d = s ? 1 : 0;
}
inline void put(uint32_t &d, perf_event_type s)
{
	d = uint32_t(s);
}
// The name was checked (check_obj_name: shorter than 16 bytes) by the
// kind's create step; the handler starts zeroed, so it stays NUL-terminated.
inline void put(char (&d)[16], const std::string &s)
{
	memcpy(d, s.data(), std::min(s.size(), sizeof(d) - 1));
}
inline void put(shm_string &d, const std::string &s)
{
	d.assign(s.begin(), s.end());
}
inline void put(shm_vector<uint64_t> &d, const std::vector<vm::insn> &s)
{
	static_assert(sizeof(vm::insn) == sizeof(uint64_t));
	d.resize(s.size());
	memcpy(d.data(), s.data(), s.size() * sizeof(vm::insn));
}
// Byte and id lists, from a vector or a span.
template <class T, class R> void put(shm_vector<T> &d, const R &s)
{
	d.assign(s.begin(), s.end());
}

// --- one value, segment -> spec ---------------------------------------------

inline void get(const uint32_t &s, uint32_t &d)
{
	d = s;
}
inline void get(const int32_t &s, int32_t &d)
{
	d = s;
}
inline void get(const uint64_t &s, uint64_t &d)
{
	d = s;
}
inline void get(const uint32_t &s, bool &d)
{
	d = s != 0;
}
inline void get(const uint32_t &s, perf_event_type &d)
{
	d = perf_event_type(s);
}
inline void get(const char (&s)[16], std::string &d)
{
	d.assign(s, strnlen(s, sizeof(s)));
}
inline void get(const shm_string &s, std::string &d)
{
	d.assign(s.begin(), s.end());
}
inline void get(const shm_vector<uint64_t> &s, std::vector<vm::insn> &d)
{
	d.resize(s.size());
	memcpy(d.data(), s.data(), s.size() * sizeof(uint64_t));
}
template <class T> void get(const shm_vector<T> &s, std::vector<T> &d)
{
	d.assign(s.begin(), s.end());
}

// --- by role ------------------------------------------------------------------

template <class D, class S> void in(field_role::required, D &d, const S &s)
{
	put(d, s);
}
template <class D, class S> void in(field_role::optional, D &d, const S &s)
{
	put(d, s);
}
template <class D, class S> void in(field_role::state, D &, const S &)
{
}
template <class D, class S> void in(field_role::derived, D &, const S &)
{
}

template <class Role, class S, class D> void out(Role, const S &s, D &d)
{
	get(s, d);
}
// A state word other processes change without the registry mutex
// (map_handler::frozen, written by freeze()).
inline void out(field_role::state, const uint32_t &s, bool &d)
{
	d = std::atomic_ref<uint32_t>(const_cast<uint32_t &>(s)).load() != 0;
}

// --- whole records --------------------------------------------------------------

#define BPFTIME_RECORD_IN(member, shared, json_key, js_key, codec, role)       \
	in(field_role::role{}, h.shared, s.member);
#define BPFTIME_RECORD_OUT(member, shared, json_key, js_key, codec, role)      \
	out(field_role::role{}, h.shared, s.member);
// Spec: the kind's spec, or for btf anything with a byte range `data`.
#define BPFTIME_RECORD_COPY(kind, spec, handler, FIELDS)                       \
	template <class Spec> void copy_in(handler &h, const Spec &s)          \
	{                                                                      \
		FIELDS(BPFTIME_RECORD_IN)                                      \
	}                                                                      \
	inline void copy_out(const handler &h, spec &s)                        \
	{                                                                      \
		FIELDS(BPFTIME_RECORD_OUT)                                     \
	}
BPFTIME_HANDLER_KINDS(BPFTIME_RECORD_COPY)
#undef BPFTIME_RECORD_COPY
#undef BPFTIME_RECORD_OUT
#undef BPFTIME_RECORD_IN

} // namespace bpftime::handlers::records
