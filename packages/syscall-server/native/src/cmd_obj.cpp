// cmd_obj.cpp: BTF_LOAD, the id commands (GET_NEXT_ID, GET_FD_BY_ID),
// OBJ_GET_INFO_BY_FD, and OBJ_PIN / OBJ_GET, as kernel/bpf/syscall.c and
// kernel/bpf/inode.c answer them.
#include "prog_tag.hpp"
#include "server_impl.hpp"
#include "user_memory.hpp"

#include <bpftime/shm/robust_mutex.hpp>

#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <cstdio>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace bpftime::syscall_server {

int write_log(uint32_t level, uint64_t buf, uint32_t size, const std::string &text);
int check_log(uint32_t level, uint64_t buf, uint32_t size);

// Pins live in the segment, so they outlast the tool that made them and
// every tool served from the registry sees them (as bpffs is one for the
// whole machine). Layout versioned by magic + version; a fixed table, the
// size of a handful of pages.
constexpr const char *PIN_TABLE_NAME = "bpftime.syscall_server.pins";
constexpr uint64_t PIN_TABLE_MAGIC = 0x534e495053595342ull; // "BSYSPINS"
constexpr uint32_t PIN_TABLE_VERSION = 1;
constexpr uint32_t PIN_PATH_MAX = 240;
constexpr uint32_t PIN_SLOTS = 256;

struct pin_entry {
	uint32_t used;
	uint32_t kind; // handlers::handler_kind
	uint32_t id;
	uint32_t reserved;
	uint64_t generation;
	char path[PIN_PATH_MAX];
};
static_assert(sizeof(pin_entry) == 264);

struct pin_table {
	uint64_t magic = PIN_TABLE_MAGIC;
	uint32_t version = PIN_TABLE_VERSION;
	uint32_t slots = PIN_SLOTS;
	shm::robust_mutex mutex;
	pin_entry entries[PIN_SLOTS] = {};
};

namespace {

constexpr uint32_t BTF_MAX_SIZE = 16u << 20;
constexpr uint16_t BTF_MAGIC = 0xeB9F;

result<pin_table *> pins_of(server::impl &s)
{
	if (s.pins)
		return s.pins;
	auto t = s.reg->segment().find_or_construct<pin_table>(PIN_TABLE_NAME);
	if (!t)
		return std::move(t).error();
	if ((*t)->magic != PIN_TABLE_MAGIC || (*t)->version != PIN_TABLE_VERSION)
		return fail(EPROTONOSUPPORT, "pin table: another layout version");
	s.pins = *t;
	return s.pins;
}

// The kernel's bpf_check_uarg_tail_zero for an info struct, then the copy
// in of what the caller set (pointers and lengths it passes to us).
template <class Info>
int info_in(Info &info, uint64_t uinfo, uint32_t &len)
{
	if (len > sizeof(Info)) {
		if (len > 4096)
			return -E2BIG;
		if (!user_readable(uinfo + sizeof(Info), len - sizeof(Info)))
			return -EFAULT;
		const auto *p = reinterpret_cast<const unsigned char *>(uinfo);
		for (size_t i = sizeof(Info); i < len; i++)
			if (p[i])
				return -E2BIG;
	}
	len = std::min<uint32_t>(len, sizeof(Info));
	memset(&info, 0, sizeof(info));
	return copy_from_user(&info, uinfo, len);
}

void set_name(char (&dst)[BPF_OBJ_NAME_LEN], const std::string &n)
{
	memset(dst, 0, sizeof(dst));
	memcpy(dst, n.data(), std::min<size_t>(n.size(), sizeof(dst) - 1));
}

uint32_t btf_ext(uint32_t id)
{
	return id == handlers::NO_ID ? 0 : ext_id(id);
}

handlers::handler_kind reg_kind(obj_kind k)
{
	switch (k) {
	case obj_kind::map:
		return handlers::handler_kind::map;
	case obj_kind::prog:
		return handlers::handler_kind::prog;
	case obj_kind::link:
		return handlers::handler_kind::link;
	case obj_kind::perf_event:
		return handlers::handler_kind::perf_event;
	case obj_kind::btf:
		return handlers::handler_kind::btf;
	case obj_kind::stats:
		break;
	}
	return handlers::handler_kind::empty;
}

} // namespace

bool is_pinned(server::impl &s, handlers::handle h)
{
	auto t = pins_of(s);
	if (!t)
		return false;
	std::lock_guard g((*t)->mutex);
	for (const pin_entry &e : (*t)->entries)
		if (e.used && e.id == h.id && e.generation == h.generation)
			return true;
	return false;
}

std::string server::fdinfo(int fd) const
{
	auto o = impl_->get(fd);
	if (!o)
		return {};
	// The generic lines of the real descriptor (its flags say O_CLOEXEC
	// or not), then the object's own, as kernel/bpf/syscall.c prints them.
	std::string out;
	{
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
		long f = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
		if (f >= 0) {
			char buf[512];
			long n = syscall(SYS_read, f, buf, sizeof(buf) - 1);
			syscall(SYS_close, f);
			std::string real(buf, n > 0 ? size_t(n) : 0);
			for (const char *key : { "pos:", "flags:", "mnt_id:", "ino:" }) {
				size_t at = real.find(key);
				if (at == std::string::npos)
					continue;
				size_t eol = real.find('\n', at);
				out += real.substr(at, eol == std::string::npos ? std::string::npos :
										 eol - at + 1);
			}
		}
	}
	auto d = impl_->reg->get(o->h.id);
	if (!d || !(d->h == o->h))
		return out;
	char line[512];
	auto tag_hex = [](const std::vector<vm::insn> &insns) {
		auto tag = prog_tag(insns);
		char hex[17];
		for (size_t i = 0; i < tag.size(); i++)
			snprintf(hex + 2 * i, 3, "%02x", tag[i]);
		return std::string(hex);
	};
	switch (o->kind) {
	case obj_kind::map: {
		const auto &s = std::get<handlers::map_spec>(d->spec);
		snprintf(line, sizeof(line),
			 "map_type:\t%u\nkey_size:\t%u\nvalue_size:\t%u\n"
			 "max_entries:\t%u\nmap_flags:\t%#x\nmap_extra:\t%#llx\n"
			 "memlock:\t0\nmap_id:\t%u\nfrozen:\t%u\n",
			 s.type, s.key_size, s.value_size, s.max_entries, s.flags,
			 (unsigned long long)s.map_extra, ext_id(o->h.id),
			 s.frozen ? 1u : 0u);
		break;
	}
	case obj_kind::prog: {
		const auto &s = std::get<handlers::prog_spec>(d->spec);
		uint64_t runs, run_ns;
		impl_->prog_stats(o->h.id, runs, run_ns);
		snprintf(line, sizeof(line),
			 "prog_type:\t%u\nprog_jited:\t0\nprog_tag:\t%s\n"
			 "memlock:\t0\nprog_id:\t%u\nrun_time_ns:\t%llu\nrun_cnt:\t%llu\n"
			 "recursion_misses:\t0\nverified_insns:\t%zu\n",
			 s.type, tag_hex(s.insns).c_str(), ext_id(o->h.id),
			 (unsigned long long)run_ns, (unsigned long long)runs,
			 s.insns.size());
		break;
	}
	case obj_kind::link: {
		const auto &s = std::get<handlers::link_spec>(d->spec);
		std::string tag;
		if (auto p = impl_->reg->get(s.prog_id); p && p->kind == handlers::handler_kind::prog)
			tag = tag_hex(std::get<handlers::prog_spec>(p->spec).insns);
		const bool raw = s.attach_type == BPF_TRACE_RAW_TP;
		snprintf(line, sizeof(line),
			 "link_type:\t%s\nlink_id:\t%u\nprog_tag:\t%s\nprog_id:\t%u\n",
			 raw ? "raw_tracepoint" : "perf_event", ext_id(o->h.id),
			 tag.c_str(), ext_id(s.prog_id));
		break;
	}
	case obj_kind::btf:
		snprintf(line, sizeof(line), "btf_id:\t%u\n", ext_id(o->h.id));
		break;
	default:
		line[0] = 0;
		break;
	}
	return out + line;
}

long server::unpin(const char *path) noexcept
{
	try {
		if (!path || !*path || strlen(path) >= PIN_PATH_MAX)
			return -ENOENT;
		auto t = pins_of(*impl_);
		if (!t)
			return -ENOENT;
		std::lock_guard g((*t)->mutex);
		for (pin_entry &e : (*t)->entries)
			if (e.used && !strcmp(e.path, path)) {
				e.used = 0;
				return 0;
			}
		return -ENOENT;
	} catch (...) {
		return -ENOENT;
	}
}

long server::impl::obj_cmd(int cmd, union bpf_attr &attr, uint64_t uattr)
{
	switch (cmd) {
	case BPF_ENABLE_STATS:
		return enable_stats(attr);
	case BPF_BTF_LOAD: {
		if (attr.btf_size > BTF_MAX_SIZE)
			return -E2BIG;
		uint32_t level = attr.btf_log_level, size = attr.btf_log_size;
		uint64_t buf = attr.btf_log_buf;
		if (int e = check_log(level, buf, size))
			return e;
		std::vector<uint8_t> data(attr.btf_size);
		if (copy_from_user(data.data(), attr.btf, data.size()))
			return -EFAULT;
		uint16_t magic = 0;
		if (data.size() >= 24)
			memcpy(&magic, data.data(), 2);
		if (magic != BTF_MAGIC) {
			int e = write_log(level, buf, size, "Invalid magic\n");
			return e ? e : -EINVAL;
		}
		auto h = reg->create_btf(data);
		if (!h)
			return -h.error().code;
		return install(make(obj_kind::btf, *h, true));
	}
	case BPF_PROG_GET_NEXT_ID:
	case BPF_MAP_GET_NEXT_ID:
	case BPF_BTF_GET_NEXT_ID:
	case BPF_LINK_GET_NEXT_ID: {
		handlers::handler_kind want =
			cmd == BPF_PROG_GET_NEXT_ID ? handlers::handler_kind::prog :
			cmd == BPF_MAP_GET_NEXT_ID  ? handlers::handler_kind::map :
			cmd == BPF_BTF_GET_NEXT_ID  ? handlers::handler_kind::btf :
						      handlers::handler_kind::link;
		// ids are registry ids + 1: the first id after start_id is
		// the registry's id start_id or later.
		for (uint32_t id = attr.start_id; id < reg->capacity(); id++) {
			if (reg->kind_of(id) != want)
				continue;
			uint32_t next = ext_id(id);
			return copy_to_user(uattr + offsetof(union bpf_attr, next_id),
					    &next, 4);
		}
		return -ENOENT;
	}
	case BPF_PROG_GET_FD_BY_ID:
	case BPF_MAP_GET_FD_BY_ID:
	case BPF_BTF_GET_FD_BY_ID:
	case BPF_LINK_GET_FD_BY_ID: {
		obj_kind k = cmd == BPF_PROG_GET_FD_BY_ID ? obj_kind::prog :
			     cmd == BPF_MAP_GET_FD_BY_ID  ? obj_kind::map :
			     cmd == BPF_BTF_GET_FD_BY_ID  ? obj_kind::btf :
							    obj_kind::link;
		if (cmd == BPF_MAP_GET_FD_BY_ID &&
		    (attr.open_flags & ~uint32_t(BPF_F_RDONLY | BPF_F_WRONLY)))
			return -EINVAL;
		uint32_t id = attr.map_id; // the same word for every kind
		if (id == 0 || reg->kind_of(id - 1) != reg_kind(k))
			return -ENOENT;
		auto h = reg->handle_of(id - 1);
		if (!h)
			return -ENOENT;
		auto o = adopt(k, *h);
		if (k == obj_kind::map && !o->map)
			return -EINVAL;
		return install(std::move(o));
	}
	case BPF_OBJ_GET_INFO_BY_FD:
		break;
	case BPF_OBJ_PIN:
	case BPF_OBJ_GET: {
		char path[PATH_MAX];
		long n = string_from_user(path, attr.pathname, sizeof(path));
		if (n == -EFAULT)
			return -EFAULT;
		if (n < 0)
			return -ENAMETOOLONG;
		if (n >= long(PIN_PATH_MAX))
			return -ENAMETOOLONG;
		if (n == 0)
			return -ENOENT;
		auto t = pins_of(*this);
		if (!t)
			return -t.error().code;
		pin_table &pt = **t;
		if (cmd == BPF_OBJ_PIN) {
			if (attr.file_flags)
				return -EINVAL;
			auto o = get(int(attr.bpf_fd));
			if (!o || o->kind == obj_kind::perf_event)
				return o ? -EINVAL : -EBADF;
			std::lock_guard g(pt.mutex);
			pin_entry *free_slot = nullptr;
			for (pin_entry &e : pt.entries) {
				if (e.used && !strcmp(e.path, path))
					return -EEXIST;
				if (!e.used && !free_slot)
					free_slot = &e;
			}
			if (!free_slot)
				return -ENOSPC;
			free_slot->kind = uint32_t(reg_kind(o->kind));
			free_slot->id = o->h.id;
			free_slot->generation = o->h.generation;
			memcpy(free_slot->path, path, size_t(n) + 1);
			free_slot->used = 1;
			return 0;
		}
		if (attr.file_flags & ~uint32_t(BPF_F_RDONLY | BPF_F_WRONLY))
			return -EINVAL;
		handlers::handle h;
		uint32_t kind = 0;
		{
			std::lock_guard g(pt.mutex);
			const pin_entry *hit = nullptr;
			for (const pin_entry &e : pt.entries)
				if (e.used && !strcmp(e.path, path))
					hit = &e;
			if (!hit)
				return -ENOENT;
			h = { hit->id, hit->generation };
			kind = hit->kind;
		}
		bool ok = false;
		obj_kind k = kind_of(handlers::handler_kind(kind), ok);
		auto now = reg->handle_of(h.id);
		if (!ok || !now || !(*now == h))
			return -ENOENT;
		auto o = adopt(k, h);
		if (k == obj_kind::map && !o->map)
			return -EINVAL;
		return install(std::move(o));
	}
	default:
		return -EINVAL;
	}

	// BPF_OBJ_GET_INFO_BY_FD
	uint64_t uinfo = attr.info.info;
	uint32_t len = attr.info.info_len;
	auto o = get(int(attr.info.bpf_fd));
	if (!o)
		return syscall_fd_errno(int(attr.info.bpf_fd));
	if (o->kind == obj_kind::stats)
		return -EINVAL;
	auto d = reg->get(o->h.id);
	if (!d || !(d->h == o->h))
		return -EBADF;
	auto put_len = [&]() {
		return copy_to_user(uattr + offsetof(union bpf_attr, info.info_len),
				    &len, 4);
	};
	switch (o->kind) {
	case obj_kind::map: {
		bpf_map_info info;
		if (int e = info_in(info, uinfo, len))
			return e;
		const auto &s = std::get<handlers::map_spec>(d->spec);
		memset(&info, 0, sizeof(info));
		info.type = s.type;
		info.id = ext_id(o->h.id);
		info.key_size = s.key_size;
		info.value_size = s.value_size;
		info.max_entries = s.max_entries;
		info.map_flags = s.flags;
		set_name(info.name, s.name);
		info.ifindex = s.ifindex;
		info.btf_id = btf_ext(s.btf_id);
		info.btf_key_type_id = s.btf_key_type_id;
		info.btf_value_type_id = s.btf_value_type_id;
		info.btf_vmlinux_value_type_id = s.btf_vmlinux_value_type_id;
		info.map_extra = s.map_extra;
		if (copy_to_user(uinfo, &info, len))
			return -EFAULT;
		return put_len();
	}
	case obj_kind::prog: {
		bpf_prog_info info;
		if (int e = info_in(info, uinfo, len))
			return e;
		const auto &s = std::get<handlers::prog_spec>(d->spec);
		uint32_t nr_map_ids = info.nr_map_ids;
		uint64_t map_ids = info.map_ids;
		uint32_t xlated_len = info.xlated_prog_len;
		uint64_t xlated = info.xlated_prog_insns;
		memset(&info, 0, sizeof(info));
		info.type = s.type;
		info.id = ext_id(o->h.id);
		info.load_time = o->load_time_ns;
		uint64_t runs, run_ns;
		prog_stats(o->h.id, runs, run_ns);
		info.run_cnt = runs;
		info.run_time_ns = run_ns;
		info.created_by_uid = getuid();
		set_name(info.name, s.name);
		info.gpl_compatible = s.license.find("GPL") != std::string::npos ||
				      s.license == "Dual BSD/GPL";
		info.nr_map_ids = uint32_t(s.map_ids.size());
		info.verified_insns = uint32_t(s.insns.size());
		auto tag = prog_tag(s.insns);
		memcpy(info.tag, tag.data(), sizeof(info.tag));
		info.attach_btf_id = s.attach_btf_id;
		// The maps' ids, and the instructions with registry map ids
		// turned into the ids we give out (bpf_insn_prepare_dump()).
		std::vector<uint32_t> ids;
		for (uint32_t m : s.map_ids)
			ids.push_back(ext_id(m));
		if (nr_map_ids && map_ids &&
		    copy_to_user(map_ids, ids.data(),
				 std::min<size_t>(nr_map_ids, ids.size()) * 4))
			return -EFAULT;
		std::vector<vm::insn> x = s.insns;
		for (size_t pc = 0; pc + 1 < x.size(); pc++) {
			if (x[pc].code != (BPF_LD | BPF_IMM | BPF_DW))
				continue;
			if (x[pc].src_reg == BPF_PSEUDO_MAP_FD ||
			    x[pc].src_reg == BPF_PSEUDO_MAP_VALUE)
				x[pc].imm = int32_t(ext_id(uint32_t(x[pc].imm)));
			else if (x[pc].src_reg == BPF_PSEUDO_MAP_IDX ||
				 x[pc].src_reg == BPF_PSEUDO_MAP_IDX_VALUE) {
				size_t i = size_t(x[pc].imm);
				x[pc].src_reg = x[pc].src_reg == BPF_PSEUDO_MAP_IDX ?
							BPF_PSEUDO_MAP_FD :
							BPF_PSEUDO_MAP_VALUE;
				x[pc].imm = i < s.fd_array.size() ?
						    int32_t(ext_id(s.fd_array[i])) :
						    0;
			}
			pc++;
		}
		info.xlated_prog_len = uint32_t(x.size() * sizeof(vm::insn));
		if (xlated_len && xlated &&
		    copy_to_user(xlated, x.data(),
				 std::min<size_t>(xlated_len, info.xlated_prog_len)))
			return -EFAULT;
		if (xlated_len || xlated)
			info.xlated_prog_insns = xlated;
		if (nr_map_ids || map_ids)
			info.map_ids = map_ids;
		if (copy_to_user(uinfo, &info, len))
			return -EFAULT;
		return put_len();
	}
	case obj_kind::link: {
		bpf_link_info info;
		if (int e = info_in(info, uinfo, len))
			return e;
		const auto &s = std::get<handlers::link_spec>(d->spec);
		uint64_t tp_name = info.raw_tracepoint.tp_name;
		uint32_t tp_name_len = info.raw_tracepoint.tp_name_len;
		memset(&info, 0, sizeof(info));
		info.type = s.attach_type == BPF_TRACE_RAW_TP ? BPF_LINK_TYPE_RAW_TRACEPOINT :
			    o->uprobe_multi		   ? LINK_TYPE_UPROBE_MULTI :
								BPF_LINK_TYPE_PERF_EVENT;
		info.id = ext_id(o->h.id);
		info.prog_id = ext_id(s.prog_id);
		if (info.type == BPF_LINK_TYPE_RAW_TRACEPOINT) {
			// bpf_raw_tp_link_fill_link_info(): the name, and its
			// length with the NUL; ENOSPC when the buffer is short.
			bool exit = false;
			if (auto t = reg->get(s.target_id); t && t->kind == handlers::handler_kind::perf_event)
				exit = std::get<handlers::perf_event_spec>(t->spec).syscall_exit;
			std::string name = exit ? "sys_exit" : "sys_enter";
			info.raw_tracepoint.tp_name = tp_name;
			info.raw_tracepoint.tp_name_len = uint32_t(name.size() + 1);
			if (tp_name) {
				if (!tp_name_len)
					return -EINVAL;
				size_t n = std::min<size_t>(tp_name_len - 1, name.size());
				if (copy_to_user(tp_name, name.data(), n))
					return -EFAULT;
				char nul = 0;
				if (copy_to_user(tp_name + n, &nul, 1))
					return -EFAULT;
				if (n < name.size()) {
					if (copy_to_user(uinfo, &info, len))
						return -EFAULT;
					put_len();
					return -ENOSPC;
				}
			}
		}
		if (copy_to_user(uinfo, &info, len))
			return -EFAULT;
		return put_len();
	}
	case obj_kind::btf: {
		bpf_btf_info info;
		if (int e = info_in(info, uinfo, len))
			return e;
		const auto &s = std::get<handlers::btf_spec>(d->spec);
		uint64_t ubtf = info.btf;
		uint32_t cap = info.btf_size;
		uint64_t uname = info.name;
		uint32_t name_len = info.name_len;
		memset(&info, 0, sizeof(info));
		info.btf = ubtf;
		info.btf_size = uint32_t(s.data.size());
		info.id = ext_id(o->h.id);
		info.name = uname;
		info.name_len = 0;
		int rc = 0;
		if (ubtf) {
			size_t n = std::min<size_t>(cap, s.data.size());
			if (copy_to_user(ubtf, s.data.data(), n))
				return -EFAULT;
			if (n < s.data.size())
				rc = -ENOSPC;
		}
		if (uname && name_len) {
			char nul = 0;
			if (copy_to_user(uname, &nul, 1))
				return -EFAULT;
		}
		if (copy_to_user(uinfo, &info, len))
			return -EFAULT;
		if (int e = put_len())
			return e;
		return rc;
	}
	default:
		return -EINVAL;
	}
}

} // namespace bpftime::syscall_server
