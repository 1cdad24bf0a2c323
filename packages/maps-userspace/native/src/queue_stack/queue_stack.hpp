// queue_stack/queue_stack.hpp: the core of BPF_MAP_TYPE_QUEUE and
// BPF_MAP_TYPE_STACK (the kernel's kernel/bpf/queue_stack_maps.c): a ring of
// max_entries + 1 value slots (one always empty, so head == tail means
// empty) with a head and a tail index. Both types push at the head; a queue
// pops the oldest value, at the tail, a stack the newest, before the head.
// A push into a full map is E2BIG, or with BPF_EXIST overwrites the oldest
// value (the tail moves on), for both types as in the kernel.
//
// Locking: one owner_lock per map around every operation (the kernel takes
// a raw spinlock; owner_lock.hpp says why not a pthread robust mutex);
// operations copy one value, so the lock is held for a memcpy. A process
// killed while holding it leaves the indexes as they were before or after
// its single store of each (head and tail are written last), so the next
// locker, which takes the lock over, continues.
#pragma once

#include "map_common.hpp"
#include "queue_stack/owner_lock.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/map_ops.hpp>
#include <bpftime/vm/helper_proto.hpp>

#include <cstring>

namespace bpftime::maps_userspace::queue_stack {

struct state {
	handlers::map_state_header header; // the type's magic and version
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t size; // slots: max_entries + 1
	uint32_t head; // the next slot a push writes
	uint32_t tail; // the oldest value
	uint32_t stride; // value_size rounded up to 8
	uint32_t is_stack;
	int64_t values_off; // from this struct
	owner_lock lock;
	uint8_t reserved[36];

	uint8_t *slot(uint32_t i) noexcept
	{
		return reinterpret_cast<uint8_t *>(this) + values_off +
		       size_t(i) * stride;
	}
};
// Changing it bumps the state_version of both types (2: the lock at 48 is an
// owner_lock, no longer a robust mutex).
static_assert(sizeof(state) == 88);

int create(const handlers::map_create_args *a, uint32_t magic,
	   uint32_t version, bool is_stack, void **out, char *err,
	   size_t err_len);
void destroy(void *segment_manager, void *s);

// The kernel's queue_stack_map_push_elem: flags BPF_ANY or BPF_EXIST.
int push(state *s, const void *value, uint64_t flags);
// __queue_map_get / __stack_map_get: copies the value; -ENOENT when empty.
int pop(state *s, void *value);
int peek(state *s, void *value);

// map_ops entries of both types (user space: lookup peeks, update pushes,
// lookup-and-delete pops; programs use the helpers below).
void *lookup(void *s, const void *key);
int lookup_copy(void *s, const void *key, void *value);
int update(void *s, const void *key, const void *value, uint64_t flags);
int delete_elem(void *s, const void *key);
int get_next_key(void *s, const void *key, void *next_key);
int lookup_and_delete(void *s, const void *key, void *value);
// JSON export: the values oldest first, so that pushing them in order
// rebuilds the map (for a stack as for a queue).
int for_each_entry(void *s, int (*cb)(void *, const void *, const void *),
		   void *ctx);

// bpf_map_push_elem, bpf_map_pop_elem, bpf_map_peek_elem, for queues,
// stacks and bloom filters (shipped by the queue's table).
extern const vm::helper_proto helpers[3];

} // namespace bpftime::maps_userspace::queue_stack
