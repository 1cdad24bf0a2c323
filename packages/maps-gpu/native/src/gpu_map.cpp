// gpu_map.cpp: creation, the IPC handle, per-process open/close and the host
// copies of the GPU maps (gpu_map.hpp).
#include "gpu_map.hpp"

#include <bpftime/maps_gpu/maps_gpu.hpp>
#include <bpftime/shm/segment.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>

namespace bpftime::maps_gpu {
namespace {

// The device memory this process holds for GPU maps, by IPC handle: what it
// allocated itself (owned) and what it opened from other processes. A
// process may hold several map_instances of one map (two registry objects
// on one segment), and CUDA refuses to open a handle in the process that
// exported it, so open and close go through this table. Cold paths only.
struct holding {
	CUdeviceptr dptr;
	CUcontext ctx;
	uint32_t refs;  // open map_instances
	bool owned;     // allocated here (cuMemAlloc), else cuIpcOpenMemHandle
	bool destroyed; // owned and destroyed while still open here
};
std::mutex holdings_mu;
std::map<std::string, holding> &holdings()
{
	static auto *m = new std::map<std::string, holding>();
	return *m;
}

std::string key_of(const uint8_t (&ipc)[CU_IPC_HANDLE_SIZE])
{
	return std::string(reinterpret_cast<const char *>(ipc), sizeof(ipc));
}

thread_local uint32_t thread_number = UINT32_MAX;
thread_local uint32_t thread_turn = 0;
std::atomic<uint32_t> threads_seen{ 0 };

const cu::driver *driver_or_error(char *err, size_t err_len, int *rc,
				  const char *what)
{
	int code = 0;
	std::string why;
	const cu::driver *d = cu::get(&code, &why);
	if (!d)
		*rc = set_error(err, err_len, code, "%s: %s", what, why.c_str());
	return d;
}

} // namespace

int set_error(char *err, size_t err_len, int e, const char *fmt, ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return -e;
}

bool is_ours(const handlers::map_ops *ops) noexcept
{
	if (!ops || !ops->provider || strcmp(ops->provider, PROVIDER) != 0)
		return false;
	for (const handlers::map_ops *o : all_map_ops())
		if (o->map_type == ops->map_type)
			return true;
	return false;
}

int create(const handlers::map_create_args *a, const type_params &p,
	   uint32_t threads, uint64_t bytes, void **out, char *err,
	   size_t err_len)
{
	int rc = 0;
	const cu::driver *d = driver_or_error(err, err_len, &rc, p.type_name);
	if (!d)
		return rc;
	int device = cu::default_device();
	if (device < 0)
		return set_error(err, err_len, EINVAL,
				 "BPFTIME_CUDA_DEVICE '%s' is not a device "
				 "ordinal (0-63)",
				 getenv("BPFTIME_CUDA_DEVICE"));
	CUcontext ctx;
	if (CUresult r = cu::use_device(*d, device, &ctx); r != CUDA_SUCCESS)
		return set_error(err, err_len, cu::to_errno(r),
				 "%s: CUDA device %d: %s", p.type_name, device,
				 cu::error_name(*d, r).c_str());
	CUdeviceptr dptr = 0;
	if (CUresult r = d->mem_alloc(&dptr, bytes); r != CUDA_SUCCESS)
		return set_error(err, err_len, cu::to_errno(r),
				 "%s: cuMemAlloc of %llu bytes on device %d: %s",
				 p.type_name, (unsigned long long)bytes, device,
				 cu::error_name(*d, r).c_str());
	CUresult r = d->memset_d8_async(dptr, 0, bytes, nullptr);
	if (r == CUDA_SUCCESS)
		r = d->stream_synchronize(nullptr);
	CUipcMemHandle h{};
	if (r == CUDA_SUCCESS)
		r = d->ipc_get_mem_handle(&h, dptr);
	if (r != CUDA_SUCCESS) {
		d->mem_free(dptr);
		return set_error(err, err_len, cu::to_errno(r),
				 "%s: %s of the device memory: %s%s",
				 p.type_name,
				 r == CUDA_ERROR_NOT_SUPPORTED ||
						 r == CUDA_ERROR_INVALID_VALUE ?
					 "cuIpcGetMemHandle" :
					 "zeroing or exporting",
				 cu::error_name(*d, r).c_str(),
				 r == CUDA_ERROR_NOT_SUPPORTED ?
					 " (this platform has no CUDA IPC)" :
					 "");
	}
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	auto *s = static_cast<state *>(mgr->allocate(sizeof(state), std::nothrow));
	if (!s) {
		d->mem_free(dptr);
		return set_error(err, err_len, ENOMEM, "the segment is full");
	}
	memset(s, 0, sizeof(*s));
	s->header.version = p.version;
	s->map_type = a->map_type;
	s->key_size = a->key_size;
	s->value_size = a->value_size;
	s->max_entries = a->max_entries;
	s->map_flags = a->map_flags;
	s->stride = (a->value_size + 7) & ~7u;
	s->threads = threads;
	s->device = device;
	s->bytes = bytes;
	s->owner_pid = int32_t(getpid());
	static_assert(sizeof(h) == sizeof(s->ipc));
	memcpy(s->ipc, &h, sizeof(h));
	try {
		std::lock_guard g(holdings_mu);
		holdings()[key_of(s->ipc)] = holding{ dptr, ctx, 0, true, false };
	} catch (...) {
		mgr->deallocate(s);
		d->mem_free(dptr);
		return set_error(err, err_len, ENOMEM, "out of memory");
	}
	s->header.magic = p.magic;
	*out = s;
	return 0;
}

void destroy(void *segment_manager, void *sp)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	auto *s = static_cast<state *>(sp);
	try {
		std::lock_guard g(holdings_mu);
		auto it = holdings().find(key_of(s->ipc));
		if (it != holdings().end() && it->second.owned) {
			int code;
			std::string why;
			const cu::driver *d = cu::get(&code, &why);
			if (it->second.refs == 0) {
				if (d) {
					d->ctx_set_current(it->second.ctx);
					d->mem_free(it->second.dptr);
				}
				holdings().erase(it);
			} else {
				// Programs of this process may still hold the
				// map (the kernel keeps it under RCU): the last
				// close frees it.
				it->second.destroyed = true;
			}
		}
	} catch (...) {
		// No memory for the key: the allocation stays until exit.
	}
	s->header.magic = 0;
	mgr->deallocate(s);
}

namespace {

int open_map(void *sp, void **out, char *err, size_t err_len)
{
	auto *s = static_cast<state *>(sp);
	int rc = 0;
	const cu::driver *d = driver_or_error(err, err_len, &rc, "open");
	if (!d)
		return rc;
	CUcontext ctx;
	if (CUresult r = cu::use_device(*d, s->device, &ctx); r != CUDA_SUCCESS)
		return set_error(err, err_len, cu::to_errno(r),
				 "open: CUDA device %d: %s", s->device,
				 cu::error_name(*d, r).c_str());
	CUdeviceptr dptr = 0;
	std::string key = key_of(s->ipc);
	{
		std::lock_guard g(holdings_mu);
		auto it = holdings().find(key);
		if (it != holdings().end()) {
			it->second.refs++;
			dptr = it->second.dptr;
		}
	}
	if (!dptr) {
		if (s->owner_pid == int32_t(getpid()) ||
		    (kill(s->owner_pid, 0) != 0 && errno == ESRCH))
			return set_error(err, err_len, ENODEV,
					 "open: the process that made the map "
					 "(pid %d) has exited, and its device "
					 "memory with it (CUDA IPC memory "
					 "lives as long as its creator)",
					 s->owner_pid);
		CUipcMemHandle h;
		memcpy(&h, s->ipc, sizeof(h));
		CUresult r = d->ipc_open_mem_handle(
			&dptr, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
		if (r != CUDA_SUCCESS)
			return set_error(err, err_len, cu::to_errno(r),
					 "open: cuIpcOpenMemHandle of the map "
					 "made by pid %d: %s",
					 s->owner_pid,
					 cu::error_name(*d, r).c_str());
		std::lock_guard g(holdings_mu);
		auto [it, fresh] = holdings().try_emplace(
			key, holding{ dptr, ctx, 0, false, false });
		if (!fresh) // another thread opened it meanwhile
			d->ipc_close_mem_handle(dptr);
		it->second.refs++;
		dptr = it->second.dptr;
	}
	auto *l = new (std::nothrow) local{};
	CUstream stream = nullptr;
	CUresult r = l ? d->stream_create(&stream, CU_STREAM_NON_BLOCKING) :
			 CUDA_ERROR_OUT_OF_MEMORY;
	if (l && r == CUDA_SUCCESS && s->map_type != GPU_RINGBUF) {
		uint32_t rows = MAX_ROWS;
		while (rows > 1 &&
		       uint64_t(rows) * BUFFER_SLOTS * s->stride > (1u << 20))
			rows /= 2;
		l->buffers = static_cast<char *>(
			calloc(size_t(rows) * BUFFER_SLOTS, s->stride));
		l->rows = rows;
		if (!l->buffers)
			r = CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (r != CUDA_SUCCESS) {
		if (stream)
			d->stream_destroy(stream);
		if (l)
			free(l->buffers);
		delete l;
		l = nullptr;
		local tmp{};
		tmp.shared = s;
		tmp.cu = d;
		tmp.ctx = ctx;
		tmp.dptr = dptr;
		close(&tmp); // drops the holding only: no stream, no buffers
		return set_error(err, err_len, cu::to_errno(r),
				 "open: a CUDA stream for the map: %s",
				 cu::error_name(*d, r).c_str());
	}
	l->shared = s;
	l->cu = d;
	l->ctx = ctx;
	l->stream = stream;
	l->dptr = dptr;
	l->map_type = s->map_type;
	l->key_size = s->key_size;
	l->value_size = s->value_size;
	l->max_entries = s->max_entries;
	l->stride = s->stride;
	l->threads = s->threads;
	l->bytes = s->bytes;
	*out = l;
	return 0;
}

} // namespace

// The registry's contract is an errno, never an exception: the table's
// strings and nodes are the only allocations that could throw.
int open(void *sp, void **out, char *err, size_t err_len)
{
	try {
		return open_map(sp, out, err, err_len);
	} catch (...) {
		return set_error(err, err_len, ENOMEM, "open: out of memory");
	}
}

void close(void *lp)
{
	auto *l = static_cast<local *>(lp);
	const cu::driver *d = l->cu;
	d->ctx_set_current(l->ctx);
	if (l->stream)
		d->stream_destroy(l->stream);
	{
		std::lock_guard g(holdings_mu);
		// By device address, not by the handle in the state: another
		// process may have destroyed the map (and the segment reused its
		// state) while this one still held it.
		auto it = holdings().end();
		for (auto i = holdings().begin(); i != holdings().end(); ++i)
			if (i->second.dptr == l->dptr)
				it = i;
		if (it != holdings().end() && --it->second.refs == 0) {
			if (!it->second.owned) {
				d->ipc_close_mem_handle(it->second.dptr);
				holdings().erase(it);
			} else if (it->second.destroyed) {
				d->mem_free(it->second.dptr);
				holdings().erase(it);
			}
		}
	}
	if (l->stream || l->buffers) {
		free(l->buffers);
		delete l;
	}
}

int copy_to_host(local *l, void *dst, uint64_t off, uint64_t len) noexcept
{
	const cu::driver *d = l->cu;
	if (CUresult r = d->ctx_set_current(l->ctx); r != CUDA_SUCCESS)
		return -cu::to_errno(r);
	CUresult r = d->memcpy_dtoh_async(dst, l->dptr + off, len, l->stream);
	if (r == CUDA_SUCCESS)
		r = d->stream_synchronize(l->stream);
	return -cu::to_errno(r);
}

int copy_to_device(local *l, uint64_t off, const void *src,
		   uint64_t len) noexcept
{
	const cu::driver *d = l->cu;
	if (CUresult r = d->ctx_set_current(l->ctx); r != CUDA_SUCCESS)
		return -cu::to_errno(r);
	CUresult r = d->memcpy_htod_async(l->dptr + off, src, len, l->stream);
	if (r == CUDA_SUCCESS)
		r = d->stream_synchronize(l->stream);
	return -cu::to_errno(r);
}

int zero_device(local *l, uint64_t off, uint64_t len) noexcept
{
	const cu::driver *d = l->cu;
	if (CUresult r = d->ctx_set_current(l->ctx); r != CUDA_SUCCESS)
		return -cu::to_errno(r);
	CUresult r = d->memset_d8_async(l->dptr + off, 0, len, l->stream);
	if (r == CUDA_SUCCESS)
		r = d->stream_synchronize(l->stream);
	return -cu::to_errno(r);
}

void *thread_buffer(local *l) noexcept
{
	if (thread_number == UINT32_MAX)
		thread_number = threads_seen.fetch_add(1, std::memory_order_relaxed);
	uint32_t slot = thread_turn++ % BUFFER_SLOTS;
	size_t row = thread_number % l->rows;
	return l->buffers + (row * BUFFER_SLOTS + slot) * l->stride;
}

} // namespace bpftime::maps_gpu
