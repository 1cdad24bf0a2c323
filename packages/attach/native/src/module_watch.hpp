// module_watch.hpp: probes that follow their module: pending ones attach
// when dlopen maps the module, and the probes of a module that dlclose
// unmapped go back to pending (or fail, when attached by address). Hooks the
// returns of dlopen, dlmopen and dlclose with uretprobes of its own (owner
// null in the probe table). Called with g().mu held.
#pragma once

#include <string>

namespace bpftime::attach::detail {

// Forgets the sites whose code is gone (dlclose unmapped the module, or
// another file is mapped there now), without writing to them.
void drop_dead_sites();
// Installs the dlopen/dlclose hooks once per process; a failure leaves
// g().dlopen_watch_error set and is logged.
void ensure_dlopen_watch();
// Whether a module that is not loaded may still appear: a bare name
// ("libfoo.so") always may, a path only when the file exists.
bool module_may_appear(const std::string &module);

} // namespace bpftime::attach::detail
