// server_impl.hpp: the state behind bpftime::syscall_server::server, shared
// by the command files (one per bpf() command group, as libbpf's bpf.c).
//
// Included after the bpftime headers and before <linux/bpf.h>: the kernel
// header #defines names (BPF_PSEUDO_MAP_FD ...) that the vm header declares
// as constants.
#pragma once

#include <bpftime/handlers/program.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/perf_consumer.hpp>
#include <bpftime/syscall_server/server.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <sys/types.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

union bpf_attr;
struct perf_event_attr;

namespace bpftime::syscall_server {

// stats: a BPF_ENABLE_STATS descriptor (no registry handler).
enum class obj_kind : uint8_t { map, prog, link, perf_event, btf, stats };

struct pin_table;
struct owner_table;
} // namespace bpftime::syscall_server
namespace bpftime::handlers {
struct prog_stats_table;
}
namespace bpftime::syscall_server {
struct watch;
struct timer_runner;

// One kernel object as this process holds it: what a struct file of
// anon_inode bpf-map / bpf-prog / bpf-link / perf_event is to the kernel.
// Descriptors (dup'ed ones too) share it through shared_ptr; links and
// programs hold what they use the same way, so the last reference, whatever
// it is, releases the registry's handler (~object).
struct object {
	obj_kind kind;
	handlers::handle h;
	server::impl *owner = nullptr;
	// Created by this process (not opened by id or pin): released from
	// the registry when the last reference here goes.
	bool owned = false;
	// Opened by id or pin while another tool holds it: this process's hold
	// is counted in the owner table (owners.cpp) until the last reference
	// here goes.
	bool held = false;
	// links: a uprobe_multi link (uses: the program, then one uprobe
	// event per offset).
	bool uprobe_multi = false;
	// stats: counted in the table's enabled count until released.
	bool stats_on = false;
	pid_t creator = 0;
	// maps: this process's instance (the hot path goes through it).
	std::shared_ptr<handlers::map_instance> map;
	// progs: the maps it uses; links: prog and perf event; maps: BTF.
	std::vector<std::shared_ptr<object>> uses;
	// progs
	uint32_t prog_type = 0;
	uint64_t load_time_ns = 0;
	// perf events: what kind of event, which decides the programs it takes
	// (perf_event_set_bpf_prog(): KPROBE programs on uprobes, TRACEPOINT
	// programs on tracepoints; RAW_TRACEPOINT ones on raw tracepoints);
	// the program attached with PERF_EVENT_IOC_SET_BPF or a
	// link (at most one, as the kernel's event->prog), and the registry
	// link that makes agents attach it while the event is enabled.
	std::mutex mu;
	std::shared_ptr<object> prog;
	// bpf_output: PERF_COUNT_SW_BPF_OUTPUT, a perf buffer's per-CPU
	// event (takes no program; its ring is a perf event array slot's).
	// timer: PERF_COUNT_SW_CPU_CLOCK (bpftrace's interval and profile
	// probes): its PERF_EVENT program runs in this process, on a thread of
	// the server, every period.
	enum class event_class : uint8_t {
		uprobe,
		tracepoint,
		raw_tracepoint,
		bpf_output,
		timer
	};
	event_class ev = event_class::uprobe;
	bool by_link = false;
	bool enabled = false;
	uint64_t cookie = 0; // bpf_get_attach_cookie() of the link
	handlers::handle reg_link{ handlers::NO_ID, 0 };
	// bpf_output events: the perf event array and slot the event was
	// stored in (the ring the tool's mmap shows), and that mmap, made
	// before the store as libbpf's perf_buffer__new does (a zeroed
	// placeholder until then). Under mu.
	std::weak_ptr<object> out_map;
	uint32_t out_slot = 0;
	uint64_t mmap_addr = 0, mmap_len = 0;
	int mmap_prot = 0, mmap_flags = 0;
	// timer events: the period, and the thread running the program while
	// the event is enabled with a program (under mu).
	uint64_t period_ns = 0;
	std::shared_ptr<timer_runner> timer;
	// perf event array maps: this process's view of the slots' buffers.
	std::unique_ptr<maps_userspace::perf_consumer> perf_view;

	~object();
};

// A thread's announcement of the object it is using on the lock-free path
// (map commands): a descriptor's last close waits until no thread announces
// the object before it destroys it, as the kernel's fdget() reference keeps
// a file for the length of a call. Slots are registered once per thread and
// reused after the thread exits.
struct hot_slot {
	std::atomic<object *> busy{ nullptr };
	std::atomic<bool> used{ false };
};
hot_slot &my_hot_slot();

// The object of fd on the lock-free path, announced in this thread's slot
// for the guard's life; nullptr when fd is not in the fast table.
class hot_ref {
    public:
	hot_ref(const server::impl &s, int fd) noexcept;
	~hot_ref();
	hot_ref(const hot_ref &) = delete;
	hot_ref &operator=(const hot_ref &) = delete;
	object *get() const noexcept
	{
		return o_;
	}

    private:
	hot_slot &slot_;
	object *o_ = nullptr;
};

// Waits until no thread announces o (after it left the fast table).
void wait_for_readers(object *o) noexcept;
// Makes the removals from the fast table visible to every thread's next
// announcement (membarrier(2) where the kernel has it, else a full fence).
void publish_removals() noexcept;

struct server::impl {
	server_options opts;
	std::unique_ptr<handlers::registry> reg;
	pid_t pid = 0;
	std::atomic<bool> keep{ false };

	// fd -> object. `fast` is read without a lock; `owners` keeps the
	// objects alive and is changed under mu, which also orders every
	// change of `fast`.
	static constexpr int FAST_FDS = 1 << 16;
	std::unique_ptr<std::atomic<object *>[]> fast;
	std::mutex mu;
	std::unordered_map<int, std::shared_ptr<object>> owners;

	// The uprobe PMU as the kernel describes it in sysfs.
	int uprobe_type = -1;
	int retprobe_bit = 0;

	// Tracepoint ids of the syscall tracepoints (tracefs
	// events/syscalls/*/id and events/raw_syscalls/*/id) -> (syscall
	// number or -1, exit); read on the first tracepoint event.
	struct tracepoint {
		int32_t syscall_id;
		bool exit;
	};
	std::unordered_map<uint64_t, tracepoint> tracepoints;
	bool tracepoints_read = false;
	std::mutex tracepoints_mu;

	// The segment file, for mmap of BPF_F_MMAPABLE maps; opened on first use.
	int shm_fd = -1;
	std::mutex shm_mu;
	// The segment file opened on first use; -errno when it cannot be.
	int segment_fd();
	// mmap(2) of a perf event descriptor: its ring (events.cpp).
	long mmap_perf_event(object &pe, uint64_t addr, uint64_t len, int prot,
			     int flags, int64_t off);
	// A bpf_output event was stored in slot `slot` of perf event array
	// `map` (BPF_MAP_UPDATE_ELEM): its mmap and epoll now show that ring.
	// Before that store: the slot's ring, when the store makes it, gets the
	// data pages of the event's mmap.
	void perf_event_storing(object &map, object &pe);
	void perf_event_stored(const std::shared_ptr<object> &map,
			       uint32_t slot, const std::shared_ptr<object> &pe);
	void unwatch(int fd);
	void stop_watches();

	// The legacy tracefs uprobes (legacy_uprobe.cpp): the tool's open
	// uprobe_events memfds and the events its lines made, by
	// "<group>/<name>".
	struct legacy_probe {
		std::string path;
		uint64_t offset = 0;
		bool retprobe = false;
		uint32_t id = 0;
	};
	std::mutex legacy_mu;
	std::unordered_set<int> uprobe_event_files;
	std::atomic<int> n_uprobe_event_files{ 0 };
	std::unordered_map<std::string, legacy_probe> legacy;
	uint32_t next_legacy_id = 1u << 30;
	// The uprobe of a legacy event's tracepoint id: fills spec's type,
	// path and offset.
	bool legacy_uprobe(uint64_t id, handlers::perf_event_spec &spec);

	// BPF_ENABLE_STATS (cmd_stats.cpp); the table, found or made on use.
	std::mutex stats_mu;
	handlers::prog_stats_table *stats = nullptr;
	long enable_stats(const union bpf_attr &attr);
	void stats_released();
	void prog_stats(uint32_t id, uint64_t &run_cnt, uint64_t &run_time_ns);
	void prog_stats_reset(uint32_t id);

	// Descriptors of ring buffers and perf buffers that the tool waits on
	// with epoll or poll (events.cpp), by descriptor. n_watches is read
	// without the lock by every epoll_wait and poll.
	std::mutex watch_mu;
	std::unordered_map<int, std::shared_ptr<syscall_server::watch>> watches;
	std::atomic<int> n_watches{ 0 };
	pin_table *pins = nullptr;
	owner_table *owners_table = nullptr;

	object *lookup(int fd) const noexcept
	{
		if (fd >= 0 && fd < FAST_FDS)
			return fast[fd].load(std::memory_order_acquire);
		return nullptr;
	}
	std::shared_ptr<object> get(int fd);
	// The object of fd when it is of kind k; else -EBADF (not ours and
	// not open), -EINVAL (another kind, or a descriptor that is not a BPF
	// object), as the kernel's bpf_map_get / bpf_prog_get answer.
	std::shared_ptr<object> get_kind(int fd, obj_kind k, int &err);
	// A new inert descriptor (CLOEXEC unless cloexec is false) for o.
	long install(std::shared_ptr<object> o, bool cloexec = true);
	std::shared_ptr<object> make(obj_kind k, handlers::handle h, bool owned);
	// An object of this process for registry id `id`, new or the one a
	// descriptor already holds (GET_FD_BY_ID, OBJ_GET).
	std::shared_ptr<object> adopt(obj_kind k, handlers::handle h);
	void drop(int fd);

	// Command groups (cmd_*.cpp). attr is the kernel-sized copy.
	long map_cmd(int cmd, union bpf_attr &attr, uint64_t uattr);
	long prog_cmd(int cmd, union bpf_attr &attr, uint64_t uattr);
	long obj_cmd(int cmd, union bpf_attr &attr, uint64_t uattr);
	long link_cmd(int cmd, union bpf_attr &attr, uint64_t uattr);
	// Attach prog to perf event pe (SET_BPF or a link); -errno.
	long attach_perf(object &pe, std::shared_ptr<object> prog, bool by_link);
	void detach_perf(object &pe);
	long sync_perf_link(object &pe); // pe.mu held
	long sync_timer(object &pe);     // pe.mu held
	long uprobe_multi(std::shared_ptr<object> p, const union bpf_attr &attr);
	long open_timer(const ::perf_event_attr &a, long cpu,
			unsigned long flags);
	static bool reg_link_absent(const object &pe)
	{
		return pe.reg_link.id == handlers::NO_ID;
	}
};

// BPF_TRACE_UPROBE_MULTI links (Linux 6.6; the uapi headers we build against
// may predate them): link_create's uprobe_multi, after prog_fd, target_fd,
// attach_type and flags.
inline constexpr uint32_t TRACE_UPROBE_MULTI = 48;  // BPF_TRACE_UPROBE_MULTI
inline constexpr uint32_t UPROBE_MULTI_RETURN = 1;  // BPF_F_UPROBE_MULTI_RETURN
inline constexpr uint32_t MAX_UPROBE_MULTI_CNT = 1u << 20;
inline constexpr uint32_t LINK_TYPE_UPROBE_MULTI = 12; // BPF_LINK_TYPE_UPROBE_MULTI
struct uprobe_multi_attr {
	uint64_t path;
	uint64_t offsets;
	uint64_t ref_ctr_offsets;
	uint64_t cookies;
	uint32_t cnt;
	uint32_t flags;
	uint32_t pid;
};
// offsetofend(union bpf_attr, link_create.uprobe_multi.pid)
inline constexpr size_t LINK_CREATE_UPROBE_MULTI_END = 16 + 44;

// Kernel ids never are 0: an object's id is its registry id + 1.
inline uint32_t ext_id(uint32_t reg_id)
{
	return reg_id + 1;
}

obj_kind kind_of(handlers::handler_kind k, bool &ok);
// For a descriptor that is not one of ours: -EBADF when it is not open,
// -EINVAL when it is some other file (the kernel's answer for a descriptor
// that is no BPF object of the kind asked for).
int syscall_fd_errno(int fd);
bool is_pinned(server::impl &s, handlers::handle h);
// owners.cpp: the objects of a tool that died without releasing them.
void record_owner(server::impl &s, handlers::handle h) noexcept;
// Clears pid's hold (0: this process's).
void forget_owner(server::impl &s, handlers::handle h, pid_t pid = 0) noexcept;
// Whether any process holds h (a tool's object, counted across processes).
bool has_holders(server::impl &s, handlers::handle h) noexcept;
// True when no other live process holds h (the caller releases it, then
// forgets its hold); otherwise clears this process's hold and says false.
bool last_holder(server::impl &s, handlers::handle h) noexcept;
void reap_dead_owners(server::impl &s) noexcept;
uint64_t now_ns();

} // namespace bpftime::syscall_server
