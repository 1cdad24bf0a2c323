// cuda_driver.cpp: the run-time binding of the CUDA driver (cuda_driver.hpp).
#include "cuda_driver.hpp"

#include <dlfcn.h>

#include <cerrno>
#include <cstdlib>
#include <mutex>

namespace bpftime::maps_gpu::cu {
namespace {

struct loaded {
	driver d{};
	int code = 0;
	std::string why;
};

template <class F> bool sym(void *lib, const char *name, F &out, loaded &l)
{
	out = reinterpret_cast<F>(dlsym(lib, name));
	if (!out) {
		l.code = ENODEV;
		l.why = std::string("the CUDA driver library has no ") + name +
			" (a driver older than CUDA 11?)";
	}
	return out != nullptr;
}

loaded load()
{
	loaded l;
	// Never unloaded: device pointers and contexts live as long as the
	// process.
	void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *e = dlerror();
		l.code = ENODEV;
		l.why = std::string("no CUDA driver: libcuda.so.1 cannot be "
				    "loaded (") +
			(e ? e : "?") +
			"); GPU maps need the NVIDIA driver and a device";
		return l;
	}
	driver &d = l.d;
	// The names are the ABI's: cuda.h maps cuMemAlloc to cuMemAlloc_v2 and
	// so on, and the driver exports both (the old ones for old callers).
	bool ok = sym(lib, "cuInit", d.init, l) &&
		  sym(lib, "cuDriverGetVersion", d.driver_get_version, l) &&
		  sym(lib, "cuDeviceGetCount", d.device_get_count, l) &&
		  sym(lib, "cuDeviceGet", d.device_get, l) &&
		  sym(lib, "cuDeviceGetName", d.device_get_name, l) &&
		  sym(lib, "cuDevicePrimaryCtxRetain", d.primary_ctx_retain, l) &&
		  sym(lib, "cuCtxSetCurrent", d.ctx_set_current, l) &&
		  sym(lib, "cuMemAlloc_v2", d.mem_alloc, l) &&
		  sym(lib, "cuMemFree_v2", d.mem_free, l) &&
		  sym(lib, "cuMemcpyDtoHAsync_v2", d.memcpy_dtoh_async, l) &&
		  sym(lib, "cuMemcpyHtoDAsync_v2", d.memcpy_htod_async, l) &&
		  sym(lib, "cuMemsetD8Async", d.memset_d8_async, l) &&
		  sym(lib, "cuStreamCreate", d.stream_create, l) &&
		  sym(lib, "cuStreamDestroy_v2", d.stream_destroy, l) &&
		  sym(lib, "cuStreamSynchronize", d.stream_synchronize, l) &&
		  sym(lib, "cuIpcGetMemHandle", d.ipc_get_mem_handle, l) &&
		  sym(lib, "cuIpcOpenMemHandle_v2", d.ipc_open_mem_handle, l) &&
		  sym(lib, "cuIpcCloseMemHandle", d.ipc_close_mem_handle, l) &&
		  sym(lib, "cuGetErrorName", d.get_error_name, l);
	if (!ok)
		return l;
	if (CUresult r = d.init(0); r != CUDA_SUCCESS) {
		l.code = ENODEV;
		l.why = "cuInit failed: " + error_name(d, r) +
			(r == CUDA_ERROR_NO_DEVICE ?
				 " (no CUDA device is visible here)" :
			 r == CUDA_ERROR_SYSTEM_DRIVER_MISMATCH ?
				 " (the kernel module and the driver library "
				 "differ in version)" :
				 "");
	}
	return l;
}

} // namespace

const driver *get(int *code, std::string *why) noexcept
{
	static loaded *l = [] {
		try {
			return new loaded(load());
		} catch (...) {
			return static_cast<loaded *>(nullptr);
		}
	}();
	if (!l) {
		*code = ENOMEM;
		*why = "out of memory loading the CUDA driver";
		return nullptr;
	}
	if (l->code) {
		*code = l->code;
		*why = l->why;
		return nullptr;
	}
	return &l->d;
}

CUresult use_device(const driver &d, int ordinal, CUcontext *ctx) noexcept
{
	// One primary context per device and process; retained once and never
	// released, so that device pointers handed out stay valid.
	static std::mutex mu;
	static CUcontext contexts[64] = {};
	if (ordinal < 0 || ordinal >= 64)
		return CUDA_ERROR_INVALID_DEVICE;
	CUcontext c;
	{
		std::lock_guard g(mu);
		c = contexts[ordinal];
		if (!c) {
			CUdevice dev;
			if (CUresult r = d.device_get(&dev, ordinal);
			    r != CUDA_SUCCESS)
				return r;
			if (CUresult r = d.primary_ctx_retain(&c, dev);
			    r != CUDA_SUCCESS)
				return r;
			contexts[ordinal] = c;
		}
	}
	*ctx = c;
	return d.ctx_set_current(c);
}

std::string error_name(const driver &d, CUresult r)
{
	const char *n = nullptr;
	if (d.get_error_name && d.get_error_name(r, &n) == CUDA_SUCCESS && n)
		return n;
	return "CUDA error " + std::to_string(int(r));
}

int to_errno(CUresult r) noexcept
{
	switch (r) {
	case CUDA_SUCCESS:
		return 0;
	case CUDA_ERROR_OUT_OF_MEMORY:
		return ENOMEM;
	case CUDA_ERROR_NO_DEVICE:
	case CUDA_ERROR_INVALID_DEVICE:
	case CUDA_ERROR_NOT_INITIALIZED:
	case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
	case CUDA_ERROR_DEVICE_UNAVAILABLE:
		return ENODEV;
	case CUDA_ERROR_INVALID_VALUE:
	case CUDA_ERROR_INVALID_HANDLE:
		return EINVAL;
	case CUDA_ERROR_NOT_SUPPORTED:
		return EOPNOTSUPP;
	default:
		return EIO;
	}
}

int default_device() noexcept
{
	const char *s = getenv("BPFTIME_CUDA_DEVICE");
	if (!s || !*s)
		return 0;
	char *end = nullptr;
	long v = strtol(s, &end, 10);
	return (*end || v < 0 || v > 63) ? -1 : int(v);
}

} // namespace bpftime::maps_gpu::cu
