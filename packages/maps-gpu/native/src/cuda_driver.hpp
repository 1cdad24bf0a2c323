// cuda_driver.hpp: the CUDA driver API, opened at run time (dlopen of
// libcuda.so.1), so that the package builds and loads on a machine without
// an NVIDIA driver. cuda.h (from the toolkit found at build time) gives the
// types; the functions are looked up by their versioned ABI names.
#pragma once

#include <cuda.h>

#include <string>

namespace bpftime::maps_gpu::cu {

struct driver {
	decltype(&::cuInit) init;
	decltype(&::cuDriverGetVersion) driver_get_version;
	decltype(&::cuDeviceGetCount) device_get_count;
	decltype(&::cuDeviceGet) device_get;
	decltype(&::cuDeviceGetName) device_get_name;
	decltype(&::cuDevicePrimaryCtxRetain) primary_ctx_retain;
	decltype(&::cuCtxSetCurrent) ctx_set_current;
	decltype(&::cuMemAlloc) mem_alloc;
	decltype(&::cuMemFree) mem_free;
	decltype(&::cuMemcpyDtoHAsync) memcpy_dtoh_async;
	decltype(&::cuMemcpyHtoDAsync) memcpy_htod_async;
	decltype(&::cuMemsetD8Async) memset_d8_async;
	decltype(&::cuStreamCreate) stream_create;
	decltype(&::cuStreamDestroy) stream_destroy;
	decltype(&::cuStreamSynchronize) stream_synchronize;
	decltype(&::cuIpcGetMemHandle) ipc_get_mem_handle;
	decltype(&::cuIpcOpenMemHandle) ipc_open_mem_handle;
	decltype(&::cuIpcCloseMemHandle) ipc_close_mem_handle;
	decltype(&::cuGetErrorName) get_error_name;
};

// The driver of this process, loaded and initialised (cuInit) once; nullptr
// with the reason in *why (ENODEV: no libcuda.so.1, a symbol missing, cuInit
// refused, e.g. no device). Any thread.
const driver *get(int *code, std::string *why) noexcept;

// The primary context of device `ordinal`, retained once per process and
// kept for its life (what the CUDA runtime of the same process uses too, so
// that pointers from here work in its kernels). Made current on the calling
// thread. CUDA_SUCCESS or the driver's error.
CUresult use_device(const driver &d, int ordinal, CUcontext *ctx) noexcept;

// "CUDA_ERROR_OUT_OF_MEMORY" for messages.
std::string error_name(const driver &d, CUresult r);
// A driver error as the kernel-style errno the registry reports.
int to_errno(CUresult r) noexcept;

// BPFTIME_CUDA_DEVICE (default 0): the device new maps are made on.
int default_device() noexcept;

} // namespace bpftime::maps_gpu::cu
