// fixture_maps.hpp: map types that exist only in the native test, each a
// small file on a core of this package, as the types of the next issues will
// be: a prog array (id-valued slots, map_ops::fd_kind) and a per-CPU array
// (a value-slot size hook, map_ops::user_value_size). Their type numbers are
// bpftime extensions, so they never shadow a type the package provides.
#pragma once

#include <bpftime/handlers/map_ops.hpp>

#include <atomic>

namespace fixture_maps {

inline constexpr uint32_t PROG_ARRAY_TYPE = 0x7ff00010;
inline constexpr uint32_t PERCPU_ARRAY_TYPE = 0x7ff00011;

const bpftime::handlers::map_ops *prog_array_ops() noexcept;
const bpftime::handlers::map_ops *percpu_array_ops() noexcept;

// Ids the prog array's fd_put_ptr was handed, in this process.
extern std::atomic<uint32_t> put_calls;
// The per-CPU array's open and close calls in this process.
extern std::atomic<uint32_t> open_calls, close_calls;
// The helper the per-CPU array's table ships: returns r1 + 1000.
inline constexpr uint32_t PERCPU_HELPER_ID = 0x7ff0;

} // namespace fixture_maps
