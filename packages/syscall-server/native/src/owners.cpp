// owners.cpp: which live processes hold which registry object: the
// kernel's reference count of a bpf object across processes. An object a
// tool created lives while its creator, or another tool that opened it by
// id or pin, holds a descriptor of it; the last holder to let go releases
// it. The objects of a tool that died without running its exit handler
// (SIGKILL, a crash, an unhandled SIGINT) are let go by the next tool that
// opens the registry, as the kernel releases a dead process's files.
//
// The table is in the segment ("bpftime.syscall_server.owners"), one entry
// per (process, object) hold: the creator's written when the object is
// made, another tool's when it opens an object that has entries (objects
// without any, those of `bpftime load prog.bpf.o` and of keep_objects tools,
// are kept as if pinned and never entered); an entry is cleared when its
// process lets go. A process is dead when kill(pid, 0) says ESRCH; a pid
// that was reused by another process reads as alive, which only delays the
// release.
#include "server_impl.hpp"

#include <bpftime/common/log.hpp>
#include <bpftime/shm/robust_mutex.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <mutex>
#include <vector>

namespace bpftime::syscall_server {

constexpr const char *OWNER_TABLE_NAME = "bpftime.syscall_server.owners";
constexpr uint64_t OWNER_TABLE_MAGIC = 0x5352454e574f5342ull; // "BSOWNERS"
// 2: entries are holds of any process, not only the creator's.
constexpr uint32_t OWNER_TABLE_VERSION = 2;
constexpr uint32_t OWNER_SLOTS = 4096;

struct owner_entry {
	int32_t pid; // 0: free
	uint32_t id;
	uint64_t generation;
};
static_assert(sizeof(owner_entry) == 16);

struct owner_table {
	uint64_t magic = OWNER_TABLE_MAGIC;
	uint32_t version = OWNER_TABLE_VERSION;
	uint32_t slots = OWNER_SLOTS;
	shm::robust_mutex mutex;
	owner_entry entries[OWNER_SLOTS] = {};
};

namespace {
const log_source owners_log{ "syscall-server", true };

owner_table *table_of(server::impl &s)
{
	if (s.owners_table)
		return s.owners_table;
	auto t = s.reg->segment().find_or_construct<owner_table>(OWNER_TABLE_NAME);
	if (!t || (*t)->magic != OWNER_TABLE_MAGIC ||
	    (*t)->version != OWNER_TABLE_VERSION)
		return nullptr;
	s.owners_table = *t;
	return s.owners_table;
}

// Releases before their users: links, then events, programs, maps, BTF.
int release_rank(handlers::handler_kind k)
{
	switch (k) {
	case handlers::handler_kind::link:
		return 0;
	case handlers::handler_kind::perf_event:
		return 1;
	case handlers::handler_kind::prog:
		return 2;
	case handlers::handler_kind::map:
		return 3;
	default:
		return 4;
	}
}
} // namespace

void record_owner(server::impl &s, handlers::handle h) noexcept
{
	if (s.keep.load(std::memory_order_relaxed))
		return;
	owner_table *t = table_of(s);
	if (!t)
		return;
	std::lock_guard g(t->mutex);
	for (owner_entry &e : t->entries)
		if (e.pid == 0) {
			e.id = h.id;
			e.generation = h.generation;
			e.pid = int32_t(s.pid);
			return;
		}
}

void forget_owner(server::impl &s, handlers::handle h, pid_t pid) noexcept
{
	owner_table *t = table_of(s);
	if (!t)
		return;
	if (pid == 0)
		pid = s.pid;
	std::lock_guard g(t->mutex);
	for (owner_entry &e : t->entries)
		if (e.pid == int32_t(pid) && e.id == h.id &&
		    e.generation == h.generation) {
			e.pid = 0;
			return;
		}
}

namespace {
bool alive(int32_t pid)
{
	return kill(pid, 0) == 0 || errno != ESRCH;
}
} // namespace

bool has_holders(server::impl &s, handlers::handle h) noexcept
{
	owner_table *t = table_of(s);
	if (!t)
		return false;
	std::lock_guard g(t->mutex);
	for (owner_entry &e : t->entries)
		if (e.pid != 0 && e.id == h.id && e.generation == h.generation)
			return true;
	return false;
}

bool last_holder(server::impl &s, handlers::handle h) noexcept
{
	owner_table *t = table_of(s);
	if (!t)
		return true;
	std::lock_guard g(t->mutex);
	owner_entry *mine = nullptr;
	bool others = false;
	for (owner_entry &e : t->entries) {
		if (e.pid == 0 || e.id != h.id || e.generation != h.generation)
			continue;
		if (e.pid == int32_t(s.pid))
			mine = &e;
		else if (alive(e.pid))
			others = true;
	}
	// Let go under the lock: two holders closing at once never both see
	// the other.
	if (others && mine)
		mine->pid = 0;
	return !others;
}

void reap_dead_owners(server::impl &s) noexcept
{
	try {
		owner_table *t = table_of(s);
		if (!t)
			return;
		struct dead {
			handlers::handle h;
			int rank;
			int32_t pid;
		};
		std::vector<dead> found;
		{
			std::lock_guard g(t->mutex);
			for (owner_entry &e : t->entries) {
				if (e.pid == 0 || alive(e.pid))
					continue;
				// Another live holder keeps the object: only
				// the dead one's hold goes.
				bool held = false;
				for (owner_entry &o : t->entries)
					if (&o != &e && o.pid != 0 && o.id == e.id &&
					    o.generation == e.generation && alive(o.pid))
						held = true;
				if (held)
					e.pid = 0;
				else
					found.push_back({ { e.id, e.generation }, 0, e.pid });
			}
		}
		if (found.empty())
			return;
		for (dead &d : found)
			d.rank = release_rank(s.reg->kind_of(d.h.id));
		std::sort(found.begin(), found.end(),
			  [](const dead &a, const dead &b) { return a.rank < b.rank; });
		unsigned released = 0;
		for (const dead &d : found) {
			if (is_pinned(s, d.h))
				continue;
			auto r = s.reg->release(d.h);
			// EBADF: already gone (released by someone else, or the id
			// reused); EBUSY: still used by something alive.
			if (r || r.error().code == EBADF) {
				forget_owner(s, d.h, d.pid);
				released += r ? 1 : 0;
			}
		}
		if (released)
			log(owners_log, log_level::info,
			    "released %u objects of tools that exited without closing them (pid %d ...)",
			    released, int(found.front().pid));
	} catch (...) {
	}
}

} // namespace bpftime::syscall_server
