// stack_map.cpp: BPF_MAP_TYPE_STACK (the kernel's stack_map_ops): last in,
// first out, on the queue and stack core (queue_stack.hpp). The helpers
// come with the queue's table (queue_map.cpp).
#include "queue_stack/queue_stack.hpp"

#include <bpftime/maps_userspace/maps_userspace.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t STACK_MAGIC = 0x5354434b; // "STCK"
// The layout of queue_stack::state. 1: the first versioned state.
constexpr uint32_t STACK_STATE_VERSION = 2; // 2: owner_lock

int stack_create(const map_create_args *a, void **out, char *err,
		 size_t err_len)
{
	return queue_stack::create(a, STACK_MAGIC, STACK_STATE_VERSION, true,
				   out, err, err_len);
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_STACK,
	.type_name = "BPF_MAP_TYPE_STACK",
	.provider = PROVIDER,
	.create = stack_create,
	.destroy = queue_stack::destroy,
	.lookup = queue_stack::lookup,
	.lookup_copy = queue_stack::lookup_copy,
	.update = queue_stack::update,
	.delete_elem = queue_stack::delete_elem,
	.get_next_key = queue_stack::get_next_key,
	.state_magic = STACK_MAGIC,
	.state_version = STACK_STATE_VERSION,
	.lookup_and_delete = queue_stack::lookup_and_delete,
	.for_each_entry = queue_stack::for_each_entry,
};

} // namespace

const handlers::map_ops *stack_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
