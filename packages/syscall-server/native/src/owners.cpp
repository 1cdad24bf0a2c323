// owners.cpp: which live process created which registry object, so that the
// objects of a tool that died without running its exit handler (SIGKILL, a
// crash, an unhandled SIGINT) are released by the next tool that opens the
// registry, as the kernel releases a dead process's files.
//
// The table is in the segment ("bpftime.syscall_server.owners"), one entry
// per object a tool created and still owns: written when the object is made
// and cleared when it is released; objects created with keep_objects are
// never entered. A process is dead when kill(pid, 0) says ESRCH; a pid that
// was reused by another process reads as alive, which only delays the
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
constexpr uint32_t OWNER_TABLE_VERSION = 1;
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

void forget_owner(server::impl &s, handlers::handle h) noexcept
{
	owner_table *t = table_of(s);
	if (!t)
		return;
	std::lock_guard g(t->mutex);
	for (owner_entry &e : t->entries)
		if (e.pid != 0 && e.id == h.id && e.generation == h.generation) {
			e.pid = 0;
			return;
		}
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
			for (owner_entry &e : t->entries)
				if (e.pid != 0 && kill(e.pid, 0) != 0 && errno == ESRCH)
					found.push_back({ { e.id, e.generation }, 0, e.pid });
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
				forget_owner(s, d.h);
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
