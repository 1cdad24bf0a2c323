// program.cpp: program instances (program.hpp): a prog handler made runnable
// in this process on a bpftime::vm::vm.
#include "prog/cpu_slot_table.hpp"
#include "prog/helper_args.hpp"
#include "registry/registry_impl.hpp"

#include <bpftime/handlers/helpers.hpp>
#include <bpftime/handlers/program.hpp>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

namespace bpftime::handlers {

// What the tail-call resolver of one program instance needs: the registry
// that resolves the ids a prog array holds, and the options its targets are
// instantiated with when this process has none of them yet.
struct tail_call_ctx {
	registry *reg = nullptr;
	instance_options opts;
};

struct program_instance::impl {
	vm::vm machine;
	handle prog;
	std::string name;
	vm::backend kind;
	tail_call_ctx tail;
	// Keeps the map instances whose addresses the code holds alive.
	std::map<uint32_t, std::shared_ptr<map_instance>> maps;
	// Set when the program uses a per-CPU map: each run owns a CPU slot
	// (cpu_slot.hpp).
	cpu_slot_table cpu_slots;
	bool per_cpu = false;

	impl(vm::backend b, vm::vm_options o) : machine(b, o), kind(b)
	{
	}
};

program_instance::program_instance(std::unique_ptr<impl> i)
	: impl_(std::move(i))
{
}
program_instance::~program_instance() = default;

result<uint64_t> program_instance::run(void *ctx, uint64_t ctx_len) const noexcept
{
	cpu_slot_guard slot(cpu_slots());
	return impl_->machine.exec(ctx, ctx_len);
}

result<uint64_t> program_instance::run(void *ctx, uint64_t ctx_len,
				       const run_context &rc) const noexcept
{
	scoped_run_context scope(rc);
	cpu_slot_guard slot(cpu_slots());
	return impl_->machine.exec(ctx, ctx_len);
}

const cpu_slot_table *program_instance::cpu_slots() const noexcept
{
	return impl_->per_cpu ? &impl_->cpu_slots : nullptr;
}

handle program_instance::prog() const noexcept
{
	return impl_->prog;
}
const std::string &program_instance::name() const noexcept
{
	return impl_->name;
}
vm::backend program_instance::backend() const noexcept
{
	return impl_->kind;
}
uint64_t program_instance::compile_time_ns() const noexcept
{
	return impl_->machine.compile_time_ns();
}
const vm::vm &program_instance::machine() const noexcept
{
	return impl_->machine;
}

result<vm::backend> backend_from_env()
{
	if (const char *d = getenv("BPFTIME_DISABLE_JIT"); d && *d &&
	    std::string_view(d) != "0")
		return vm::backend::interpreter;
	const char *name = getenv("BPFTIME_VM_NAME");
	if (!name || !*name)
		return vm::backend::jit_x64;
	auto b = vm::parse_backend(name);
	if (!b)
		return fail(b.error().code,
			    "BPFTIME_VM_NAME: " + b.error().message);
	return b;
}

namespace {

// The miss path of resolve_tail_call: this process has no instance of the
// program yet (another process stored it in the array after this one made
// its programs). Instantiates it with the caller's options, on the thread
// running the caller, which holds no lock (programs run without one); only
// the first call into a target takes this path. nullptr on any failure: the
// tail call then falls through, as the kernel's does for an empty slot.
const vm::vm *instantiate_tail_target(const tail_call_ctx &tc,
				      uint32_t prog_id) noexcept
{
	try {
		if (tc.reg->kind_of(prog_id) != handler_kind::prog)
			return nullptr;
		auto r = tc.reg->instantiate(prog_id, tc.opts);
		return r ? &(*r)->machine() : nullptr;
	} catch (const std::exception &) {
		return nullptr;
	}
}

// bpf_tail_call(ctx, prog_array, index) on the hot path. The map's values are
// program ids (map_ops::fd_kind == MAP_FD_PROG: the kernel's
// map_fd_get_ptr stored a prog pointer, the registry stores the id), read at
// call time from the shared map, so an update made by any process is seen at
// the next call; the id resolves to this process's instance of the program.
const vm::vm *resolve_tail_call(void *user, uint64_t prog_array,
				uint64_t index)
{
	auto *tc = static_cast<const tail_call_ctx *>(user);
	auto *m = reinterpret_cast<const map_instance *>(prog_array);
	if (!m || m->fd_kind != MAP_FD_PROG)
		return nullptr;
	uint32_t idx = uint32_t(index);
	if (idx >= m->max_entries)
		return nullptr;
	const void *v = m->ops->lookup(m->state, &idx);
	if (!v)
		return nullptr;
	uint32_t prog_id;
	memcpy(&prog_id, v, sizeof(prog_id));
	if (prog_id == NO_ID)
		return nullptr;
	if (const program_instance *p = tc->reg->cached_program(prog_id))
		[[likely]] return &p->machine();
	return instantiate_tail_target(*tc, prog_id);
}

constexpr uint8_t CALL = vm::BPF_JMP | vm::BPF_CALL;

// A map whose program-side values are the running CPU's (the kernel's
// per-CPU types, and bpftime's types built on them): the types whose user
// space value differs from a program's, map_ops::user_value_size. A run of
// a program using one owns a CPU slot.
bool is_per_cpu(const map_instance &m) noexcept
{
	return m.ops && m.ops->user_value_size;
}

} // namespace

result<std::shared_ptr<program_instance>>
registry::instantiate(uint32_t id, const instance_options &opts)
{
	// Unset: the JIT. The edges (the agent, the binding) read
	// BPFTIME_VM_NAME / BPFTIME_DISABLE_JIT with backend_from_env() and
	// pass what they found.
	const vm::backend kind = opts.backend.value_or(vm::backend::jit_x64);

	// Copy the program out under the registry mutex: a concurrent
	// release must not free it while we read.
	result<handler_info> info = fail(EBADF, "");
	{
		auto guard = impl_->lock();
		if (!guard)
			return std::move(guard).error();
		auto obj = impl_->object_at(id, handler_kind::prog, "prog");
		if (!obj)
			return std::move(obj).error();
		info = impl_->describe_locked(id);
	}
	if (!info)
		return std::move(info).error();
	const handle h = info->h;
	const prog_spec &spec = std::get<prog_spec>(info->spec);
	const std::string what = "prog '" + spec.name + "' (id " +
				 std::to_string(id) + ")";
	auto key = std::make_tuple(id, h.generation, int(kind), opts.bounds_check);
	{
		std::lock_guard g(impl_->local);
		if (auto it = impl_->progs.find(key); it != impl_->progs.end())
			return it->second;
	}

	// Refuse helpers this process does not have by their kernel names,
	// before the verifier would by number.
	for (size_t pc = 0; pc < spec.insns.size(); pc++) {
		const vm::insn &i = spec.insns[pc];
		if (i.code == (vm::BPF_LD | vm::BPF_IMM | vm::BPF_DW)) {
			pc++;
			continue;
		}
		if (i.code != CALL || i.src_reg != vm::BPF_HELPER_CALL)
			continue;
		uint32_t hid = uint32_t(i.imm);
		if (hid == BPF_FUNC_tail_call || find_helper(hid))
			continue;
		std::string_view hn = helper_name(hid);
		return fail(EINVAL, what + ": insn " + std::to_string(pc) +
					    ": calls " +
					    (hn.empty() ? std::string("unknown helper") :
							  "bpf_" + std::string(hn)) +
					    " (#" + std::to_string(hid) +
					    "), which bpftime does not provide");
	}

	if (auto st = check_helper_args(spec.insns, what); !st)
		return st.error();

	vm::vm_options vo;
	vo.bounds_check = opts.bounds_check;
	vo.type_check = verifier_strict();
	vo.ctx_size = context_size(spec.type);
	vo.ctx_writable = context_writable(spec.type);
	auto pi = std::make_unique<program_instance::impl>(kind, vo);
	pi->prog = h;
	pi->name = spec.name;
	for (uint32_t mid : spec.map_ids) {
		auto m = map(mid);
		if (!m)
			return fail(m.error().code,
				    what + ": " + m.error().message);
		pi->maps[mid] = *m;
		if (is_per_cpu(**m))
			pi->per_cpu = true;
		const uint32_t inner = (*m)->shared ?
					       (*m)->shared->attr.inner_map_id :
					       NO_ID;
		if (inner != NO_ID)
			if (auto in = map(inner); in && is_per_cpu(**in))
				pi->per_cpu = true;
	}
	if (pi->per_cpu)
		pi->cpu_slots = open_cpu_slots(impl_->mgr);
	for (const vm::helper_proto &hp : available_helpers())
		if (auto st = pi->machine.register_helper(hp); !st)
			return fail(st.error().code, what + ": " + st.error().message);
	pi->tail.reg = this;
	pi->tail.opts = instance_options{ kind, opts.bounds_check };
	pi->machine.set_tail_call_resolver(resolve_tail_call, &pi->tail);
	if (opts.bounds_check) {
		// Map values live anywhere in the segment; a program may touch
		// the segment, its stack and its context, nothing else.
		pi->machine.add_memory_region(vm::memory_region{
			reinterpret_cast<uint64_t>(impl_->seg.base()),
			impl_->seg.info().size, true });
	}
	const std::vector<uint32_t> &fd_array = spec.fd_array;
	auto &maps_by_id = pi->maps;
	pi->machine.set_lddw_resolver(
		[&](const vm::lddw_request &r) -> result<uint64_t> {
			uint32_t map_id;
			bool value = false;
			switch (r.kind) {
			case vm::BPF_PSEUDO_MAP_VALUE:
				value = true;
				[[fallthrough]];
			case vm::BPF_PSEUDO_MAP_FD:
				map_id = uint32_t(r.imm);
				break;
			case vm::BPF_PSEUDO_MAP_IDX_VALUE:
				value = true;
				[[fallthrough]];
			case vm::BPF_PSEUDO_MAP_IDX:
				if (r.imm < 0 || size_t(r.imm) >= fd_array.size())
					return fail(EINVAL,
						    "map index " +
							    std::to_string(r.imm) +
							    " is outside fd_array");
				map_id = fd_array[size_t(r.imm)];
				break;
			case vm::BPF_PSEUDO_BTF_ID:
				return fail(EINVAL, "kernel variables "
						    "(BPF_PSEUDO_BTF_ID) do not "
						    "exist in user space");
			default:
				return fail(EINVAL, "unknown lddw pseudo kind");
			}
			auto it = maps_by_id.find(map_id);
			if (it == maps_by_id.end())
				return fail(EBADF, "map id " +
							   std::to_string(map_id) +
							   " is not among the "
							   "program's maps");
			const map_instance &m = *it->second;
			if (!value)
				return reinterpret_cast<uint64_t>(&m);
			if (!m.ops->direct_value_addr)
				return fail(EINVAL, m.describe() +
							    ": no direct value "
							    "access for " +
							    describe_map_type(m.map_type));
			uint64_t addr = 0;
			int rc = m.ops->direct_value_addr(m.state, &addr);
			if (rc != 0)
				return fail(-rc, m.describe() +
							 ": direct value access: " +
							 errno_name(-rc));
			uint32_t off = uint32_t(r.next_imm);
			if (off >= m.value_size)
				return fail(EINVAL,
					    m.describe() + ": value offset " +
						    std::to_string(off) +
						    " is beyond its " +
						    std::to_string(m.value_size) +
						    "-byte value");
			return addr + off;
		});
	pi->machine.set_map_describer(
		[&](uint8_t kind, int32_t imm) -> std::optional<vm::map_desc> {
			uint32_t map_id = uint32_t(imm);
			if (kind == vm::BPF_PSEUDO_MAP_IDX ||
			    kind == vm::BPF_PSEUDO_MAP_IDX_VALUE) {
				if (imm < 0 || size_t(imm) >= fd_array.size())
					return std::nullopt;
				map_id = fd_array[size_t(imm)];
			}
			auto it = maps_by_id.find(map_id);
			if (it == maps_by_id.end())
				return std::nullopt;
			const map_instance &m = *it->second;
			vm::map_desc d;
			d.type = m.map_type;
			d.key_size = m.key_size;
			d.value_size = m.value_size;
			d.max_entries = m.max_entries;
			d.flags = m.map_flags;
			const uint32_t inner =
				m.shared ? m.shared->attr.inner_map_id : NO_ID;
			if (inner != NO_ID) {
				if (auto in = map(inner)) {
					d.inner_type = (*in)->map_type;
					d.inner_key_size = (*in)->key_size;
					d.inner_value_size = (*in)->value_size;
					d.inner_max_entries = (*in)->max_entries;
				}
			}
			return d;
		});
	// bpf_map_lookup_elem of a map whose type can describe its lookup
	// (map_ops::gen_lookup) is emitted inline by the JIT, as the kernel's
	// verifier does with map_gen_lookup.
	pi->machine.set_inline_resolver(
		[&](uint32_t helper_id,
		    uint64_t r1) -> std::optional<vm::inline_helper> {
			if (helper_id != vm::BPF_FUNC_map_lookup_elem)
				return std::nullopt;
			for (auto &[mid, m] : maps_by_id) {
				if (reinterpret_cast<uint64_t>(m.get()) != r1)
					continue;
				if (!m->ops->gen_lookup || m->fd_kind != MAP_FD_NONE)
					return std::nullopt;
				map_inline_lookup d{};
				d.size = sizeof(d);
				if (m->ops->gen_lookup(m->state, &d) != 0 ||
				    (d.kind != MAP_INLINE_ARRAY &&
				     d.kind != MAP_INLINE_PERCPU_ARRAY))
					return std::nullopt;
				vm::inline_helper h;
				h.kind = d.kind == MAP_INLINE_ARRAY ?
						 vm::inline_helper::array_lookup :
						 vm::inline_helper::percpu_array_lookup;
				h.base = d.base;
				h.stride = d.stride;
				h.max_entries = d.max_entries;
				h.cpu_stride = d.cpu_stride;
				// The run's slot (cpu_slot.hpp), as the helper
				// reads it.
				if (d.kind == MAP_INLINE_PERCPU_ARRAY)
					h.cpu_tls_offset = cpu_slot_tls_offset();
				return h;
			}
			return std::nullopt;
		});
	auto st_load = pi->machine.load(spec.insns);
	// The resolvers captured locals by reference; they are not needed
	// after load().
	pi->machine.set_lddw_resolver(nullptr);
	pi->machine.set_inline_resolver(nullptr);
	pi->machine.set_map_describer(nullptr);
	if (!st_load)
		return fail(st_load.error().code,
			    what + ": " + st_load.error().message);

	auto inst = std::make_shared<program_instance>(std::move(pi));
	std::vector<uint32_t> tail_targets;
	{
		std::lock_guard g(impl_->local);
		auto [it, fresh] = impl_->progs.emplace(key, inst);
		if (!fresh)
			return it->second;
		impl_->prog_fast[id].store(inst.get(), std::memory_order_release);
	}
	// Programs reachable by bpf_tail_call through the prog arrays this one
	// uses are made ready too, so the hot path finds them.
	// Those stored later, by any process, are made on their first call
	// (resolve_tail_call).
	for (auto &[mid, m] : inst->impl_->maps) {
		if (m->fd_kind != MAP_FD_PROG)
			continue;
		// Two keys: get_next_key may not read and write the same one.
		std::vector<uint8_t> keys(size_t(m->key_size) * 2);
		const void *cur = nullptr;
		for (int n = 0;; n ^= 1) {
			uint8_t *k = keys.data() + size_t(n) * m->key_size;
			if (m->ops->get_next_key(m->state, cur, k) != 0)
				break;
			uint32_t target = NO_ID;
			if (m->ops->lookup_copy(m->state, k, &target) == 0 &&
			    target != NO_ID && target != id)
				tail_targets.push_back(target);
			cur = k;
		}
	}
	for (uint32_t t : tail_targets) {
		if (kind_of(t) != handler_kind::prog)
			continue;
		auto r = instantiate(t, opts);
		if (!r)
			return fail(r.error().code,
				    what + ": tail call target: " +
					    r.error().message);
	}
	return inst;
}

} // namespace bpftime::handlers
