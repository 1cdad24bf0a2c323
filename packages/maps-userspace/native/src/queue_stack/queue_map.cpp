// queue_map.cpp: BPF_MAP_TYPE_QUEUE (the kernel's queue_map_ops): first in,
// first out, on the queue and stack core (queue_stack.hpp). Its table ships
// the push/pop/peek helpers of queues, stacks and bloom filters.
#include "queue_stack/queue_stack.hpp"

#include <bpftime/maps_userspace/maps_userspace.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t QUEUE_MAGIC = 0x51554555; // "QUEU"
// The layout of queue_stack::state. 1: the first versioned state.
constexpr uint32_t QUEUE_STATE_VERSION = 2; // 2: owner_lock

int queue_create(const map_create_args *a, void **out, char *err,
		 size_t err_len)
{
	return queue_stack::create(a, QUEUE_MAGIC, QUEUE_STATE_VERSION, false,
				   out, err, err_len);
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_QUEUE,
	.type_name = "BPF_MAP_TYPE_QUEUE",
	.provider = PROVIDER,
	.create = queue_create,
	.destroy = queue_stack::destroy,
	.lookup = queue_stack::lookup,
	.lookup_copy = queue_stack::lookup_copy,
	.update = queue_stack::update,
	.delete_elem = queue_stack::delete_elem,
	.get_next_key = queue_stack::get_next_key,
	.state_magic = QUEUE_MAGIC,
	.state_version = QUEUE_STATE_VERSION,
	.helpers = queue_stack::helpers,
	.helper_count = 3,
	.lookup_and_delete = queue_stack::lookup_and_delete,
	.for_each_entry = queue_stack::for_each_entry,
};

} // namespace

const handlers::map_ops *queue_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
