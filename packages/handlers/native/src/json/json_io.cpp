// json_io.cpp: registry::export_json and registry::import_json (json.hpp
// describes the document).
#include "json/json_value.hpp"
#include "registry/registry_impl.hpp"

#include <bpftime/handlers/json.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <set>

namespace bpftime::handlers {
namespace {

// --- writing -------------------------------------------------------------

void put_hex(std::string &out, const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const auto *p = static_cast<const uint8_t *>(data);
	out += '"';
	for (size_t i = 0; i < len; i++) {
		out += digits[p[i] >> 4];
		out += digits[p[i] & 15];
	}
	out += '"';
}

struct object_writer {
	std::string &out;
	bool first = true;

	explicit object_writer(std::string &o) : out(o)
	{
		out += '{';
	}
	void key(const char *k)
	{
		if (!first)
			out += ", ";
		first = false;
		json::write_string(out, k);
		out += ": ";
	}
	void num(const char *k, int64_t v)
	{
		key(k);
		out += std::to_string(v);
	}
	void u64str(const char *k, uint64_t v)
	{
		key(k);
		out += '"' + std::to_string(v) + '"';
	}
	void str(const char *k, std::string_view v)
	{
		key(k);
		json::write_string(out, v);
	}
	void id_or_null(const char *k, uint32_t v)
	{
		key(k);
		out += v == NO_ID ? "null" : std::to_string(v);
	}
	// A kernel enum: its name when it has one, else the number.
	void named(const char *k, std::string_view name, uint32_t v)
	{
		key(k);
		if (name.empty())
			out += std::to_string(v);
		else
			json::write_string(out, name);
	}
	void boolean(const char *k, bool v)
	{
		key(k);
		out += v ? "true" : "false";
	}
	void hex(const char *k, const void *p, size_t n)
	{
		key(k);
		put_hex(out, p, n);
	}
	void close()
	{
		out += '}';
	}
};

// --- reading ---------------------------------------------------------------

// Field accessors that name the handler and the field in their errors.
struct fields {
	const json::value &v;
	std::string where; // "handler #3 (id 7)"

	failure bad(const char *name, const std::string &why) const
	{
		return fail(EINVAL, where + ": " + name + ": " + why);
	}

	result<const json::value *> need(const char *name,
					 json::value::type t) const
	{
		const json::value *f = v.get(name);
		if (!f)
			return bad(name, "missing");
		if (f->t != t)
			return bad(name, "wrong type");
		return f;
	}

	template <class T> result<T> integer(const char *name, T lo, T hi) const
	{
		const json::value *f = v.get(name);
		if (!f)
			return bad(name, "missing");
		if (f->t != json::value::type::number)
			return bad(name, "expected a number");
		T x{};
		auto [end, ec] = std::from_chars(f->s.data(),
						 f->s.data() + f->s.size(), x);
		if (ec != std::errc() || end != f->s.data() + f->s.size() ||
		    x < lo || x > hi)
			return bad(name, "'" + f->s + "' is not an integer in [" +
						 std::to_string(lo) + ", " +
						 std::to_string(hi) + "]");
		return x;
	}

	result<uint32_t> u32(const char *name) const
	{
		return integer<uint32_t>(name, 0, UINT32_MAX);
	}

	result<uint32_t> id_or_null(const char *name) const
	{
		const json::value *f = v.get(name);
		if (f && f->t == json::value::type::null)
			return NO_ID;
		return integer<uint32_t>(name, 0, NO_ID - 1);
	}

	result<uint64_t> u64str(const char *name) const
	{
		auto f = need(name, json::value::type::string);
		if (!f)
			return std::move(f).error();
		const std::string &s = (*f)->s;
		uint64_t x = 0;
		auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
		if (s.empty() || ec != std::errc() || end != s.data() + s.size())
			return bad(name, "'" + s + "' is not a decimal u64 string");
		return x;
	}

	result<std::string> str(const char *name) const
	{
		auto f = need(name, json::value::type::string);
		if (!f)
			return std::move(f).error();
		return (*f)->s;
	}

	result<bool> boolean(const char *name) const
	{
		auto f = need(name, json::value::type::boolean);
		if (!f)
			return std::move(f).error();
		return (*f)->b;
	}

	// A kernel enum by name, or its number.
	result<uint32_t> named(const char *name,
			       std::optional<uint32_t> (*from)(std::string_view)
				       noexcept) const
	{
		const json::value *f = v.get(name);
		if (f && f->t == json::value::type::string) {
			auto x = from(f->s);
			if (!x)
				return bad(name, "unknown name '" + f->s + "'");
			return *x;
		}
		return u32(name);
	}

	result<std::vector<uint8_t>> hex(const char *name,
					 const json::value *f = nullptr) const
	{
		if (!f) {
			auto g = need(name, json::value::type::string);
			if (!g)
				return std::move(g).error();
			f = *g;
		}
		if (f->t != json::value::type::string)
			return bad(name, "expected a hex string");
		const std::string &s = f->s;
		if (s.size() % 2)
			return bad(name, "odd number of hex digits");
		std::vector<uint8_t> out(s.size() / 2);
		auto nib = [](char c) -> int {
			if (c >= '0' && c <= '9')
				return c - '0';
			if (c >= 'a' && c <= 'f')
				return c - 'a' + 10;
			if (c >= 'A' && c <= 'F')
				return c - 'A' + 10;
			return -1;
		};
		for (size_t i = 0; i < out.size(); i++) {
			int hi = nib(s[2 * i]), lo = nib(s[2 * i + 1]);
			if (hi < 0 || lo < 0)
				return bad(name, "not a hex string");
			out[i] = uint8_t(hi << 4 | lo);
		}
		return out;
	}
};

#define TRY_ASSIGN(lhs, expr)                                                  \
	do {                                                                   \
		auto r_ = (expr);                                              \
		if (!r_)                                                       \
			return std::move(r_).error();                          \
		lhs = std::move(*r_);                                          \
	} while (0)

struct planned {
	uint32_t id;
	handler_kind kind;
	handler_spec spec;
	// map contents, packed key/value pairs
	std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> entries;
};

result<planned> read_handler(const json::value &h, size_t index,
			     uint32_t capacity)
{
	fields f{ h, "handler #" + std::to_string(index) };
	if (h.t != json::value::type::object)
		return fail(EINVAL, f.where + ": expected an object");
	planned p{};
	TRY_ASSIGN(p.id, f.u32("id"));
	f.where += " (id " + std::to_string(p.id) + ")";
	if (p.id >= capacity)
		return fail(EINVAL, f.where + ": id is outside the table "
					      "(capacity " +
					    std::to_string(capacity) + ")");
	std::string kind;
	TRY_ASSIGN(kind, f.str("kind"));
	if (kind == "map") {
		p.kind = handler_kind::map;
		map_spec s;
		TRY_ASSIGN(s.name, f.str("name"));
		TRY_ASSIGN(s.type, f.named("type", map_type_from_name));
		TRY_ASSIGN(s.key_size, f.u32("key_size"));
		TRY_ASSIGN(s.value_size, f.u32("value_size"));
		TRY_ASSIGN(s.max_entries, f.u32("max_entries"));
		TRY_ASSIGN(s.flags, f.u32("map_flags"));
		TRY_ASSIGN(s.inner_map_id, f.id_or_null("inner_map_id"));
		TRY_ASSIGN(s.btf_id, f.id_or_null("btf_id"));
		TRY_ASSIGN(s.btf_key_type_id, f.u32("btf_key_type_id"));
		TRY_ASSIGN(s.btf_value_type_id, f.u32("btf_value_type_id"));
		TRY_ASSIGN(s.btf_vmlinux_value_type_id,
			   f.u32("btf_vmlinux_value_type_id"));
		TRY_ASSIGN(s.numa_node, f.u32("numa_node"));
		TRY_ASSIGN(s.ifindex, f.u32("map_ifindex"));
		TRY_ASSIGN(s.map_extra, f.u64str("map_extra"));
		TRY_ASSIGN(s.frozen, f.boolean("frozen"));
		const json::value *entries;
		TRY_ASSIGN(entries, f.need("entries", json::value::type::array));
		for (size_t i = 0; i < entries->a.size(); i++) {
			const json::value &e = entries->a[i];
			std::string name = "entries[" + std::to_string(i) + "]";
			if (e.t != json::value::type::array || e.a.size() != 2)
				return f.bad(name.c_str(),
					     "expected [key hex, value hex]");
			std::vector<uint8_t> k, v;
			TRY_ASSIGN(k, f.hex(name.c_str(), &e.a[0]));
			TRY_ASSIGN(v, f.hex(name.c_str(), &e.a[1]));
			if (k.size() != s.key_size || v.size() != s.value_size)
				return f.bad(name.c_str(),
					     "key of " + std::to_string(k.size()) +
						     " and value of " +
						     std::to_string(v.size()) +
						     " bytes; the map has " +
						     std::to_string(s.key_size) +
						     " and " +
						     std::to_string(s.value_size));
			p.entries.emplace_back(std::move(k), std::move(v));
		}
		BPFTIME_TRY(check_obj_name("map", s.name));
		p.spec = std::move(s);
	} else if (kind == "prog") {
		p.kind = handler_kind::prog;
		prog_spec s;
		TRY_ASSIGN(s.name, f.str("name"));
		TRY_ASSIGN(s.type, f.named("type", prog_type_from_name));
		TRY_ASSIGN(s.expected_attach_type,
			   f.named("expected_attach_type", attach_type_from_name));
		TRY_ASSIGN(s.attach_btf_id, f.u32("attach_btf_id"));
		TRY_ASSIGN(s.prog_flags, f.u32("prog_flags"));
		TRY_ASSIGN(s.kern_version, f.u32("kern_version"));
		TRY_ASSIGN(s.license, f.str("license"));
		std::vector<uint8_t> raw;
		TRY_ASSIGN(raw, f.hex("insns"));
		if (raw.size() % sizeof(vm::insn))
			return f.bad("insns", "not a whole number of 8-byte "
					      "instructions");
		s.insns.resize(raw.size() / sizeof(vm::insn));
		memcpy(s.insns.data(), raw.data(), raw.size());
		const json::value *fa;
		TRY_ASSIGN(fa, f.need("fd_array", json::value::type::array));
		for (const json::value &x : fa->a) {
			uint32_t id = 0;
			auto [end, ec] = std::from_chars(
				x.s.data(), x.s.data() + x.s.size(), id);
			if (x.t != json::value::type::number ||
			    ec != std::errc() || end != x.s.data() + x.s.size())
				return f.bad("fd_array", "expected map ids");
			s.fd_array.push_back(id);
		}
		p.spec = std::move(s);
	} else if (kind == "link") {
		p.kind = handler_kind::link;
		link_spec s;
		TRY_ASSIGN(s.prog_id, f.u32("prog_id"));
		TRY_ASSIGN(s.target_id, f.id_or_null("target_id"));
		TRY_ASSIGN(s.attach_type,
			   f.named("attach_type", attach_type_from_name));
		TRY_ASSIGN(s.flags, f.u32("flags"));
		TRY_ASSIGN(s.cookie, f.u64str("cookie"));
		p.spec = std::move(s);
	} else if (kind == "perf_event") {
		p.kind = handler_kind::perf_event;
		perf_event_spec s;
		std::string type;
		TRY_ASSIGN(type, f.str("type"));
		auto t = parse_perf_event_type(type);
		if (!t)
			return f.bad("type", "unknown event type '" + type + "'");
		s.type = *t;
		TRY_ASSIGN(s.path, f.str("path"));
		TRY_ASSIGN(s.offset, f.u64str("offset"));
		TRY_ASSIGN(s.symbol, f.str("symbol"));
		TRY_ASSIGN(s.pid, f.integer<int32_t>("pid", -1, INT32_MAX));
		TRY_ASSIGN(s.ref_ctr_offset, f.u64str("ref_ctr_offset"));
		TRY_ASSIGN(s.syscall_id,
			   f.integer<int32_t>("syscall_id", -1, INT32_MAX));
		TRY_ASSIGN(s.syscall_exit, f.boolean("syscall_exit"));
		TRY_ASSIGN(s.custom_name, f.str("custom_name"));
		TRY_ASSIGN(s.custom_config, f.u64str("custom_config"));
		p.spec = std::move(s);
	} else if (kind == "btf") {
		p.kind = handler_kind::btf;
		btf_spec s;
		TRY_ASSIGN(s.data, f.hex("data"));
		p.spec = std::move(s);
	} else {
		return fail(EINVAL, f.where + ": kind: unknown kind '" + kind + "'");
	}
	return p;
}

// Creation order: what others refer to first.
int rank(handler_kind k)
{
	switch (k) {
	case handler_kind::btf:
		return 0;
	case handler_kind::map:
		return 1;
	case handler_kind::prog:
		return 2;
	case handler_kind::perf_event:
		return 3;
	case handler_kind::link:
		return 4;
	default:
		return 5;
	}
}

} // namespace

result<std::string> registry::export_json()
{
	auto guard = impl_->lock();
	if (!guard)
		return std::move(guard).error();
	std::string out;
	out += "{\"format\": \"";
	out += JSON_FORMAT_NAME;
	out += "\", \"version\": " + std::to_string(JSON_FORMAT_VERSION) +
	       ", \"capacity\": " + std::to_string(capacity()) +
	       ", \"handlers\": [";
	bool first = true;
	for (uint32_t id = 0; id < capacity(); id++) {
		if (word_kind(impl_->word_at(id)) == handler_kind::empty)
			continue;
		auto info = impl_->describe_locked(id);
		if (!info)
			return std::move(info).error();
		out += first ? "\n" : ",\n";
		first = false;
		object_writer w(out);
		w.num("id", id);
		w.str("kind", kind_name(info->kind));
		if (auto *s = std::get_if<map_spec>(&info->spec)) {
			w.str("name", s->name);
			w.named("type", map_type_name(s->type), s->type);
			w.num("key_size", s->key_size);
			w.num("value_size", s->value_size);
			w.num("max_entries", s->max_entries);
			w.num("map_flags", s->flags);
			w.id_or_null("inner_map_id", s->inner_map_id);
			w.id_or_null("btf_id", s->btf_id);
			w.num("btf_key_type_id", s->btf_key_type_id);
			w.num("btf_value_type_id", s->btf_value_type_id);
			w.num("btf_vmlinux_value_type_id",
			      s->btf_vmlinux_value_type_id);
			w.num("numa_node", s->numa_node);
			w.num("map_ifindex", s->ifindex);
			w.u64str("map_extra", s->map_extra);
			w.boolean("frozen", s->frozen);
			auto obj = impl_->object_at(id, handler_kind::map, "map");
			const map_handler &mh = std::get<map_handler>((*obj)->value);
			const map_ops *ops = find_map_ops(s->type);
			if (!ops)
				return fail(EINVAL,
					    "export: map '" + s->name + "' (id " +
						    std::to_string(id) +
						    "): cannot read its contents: " +
						    missing_ops_reason(s->type));
			void *state = impl_->at<void>(mh.state_offset);
			w.key("entries");
			out += '[';
			std::vector<uint8_t> key(s->key_size), next(s->key_size),
				value(s->value_size);
			bool have = false, first_entry = true;
			for (;;) {
				int rc = ops->get_next_key(
					state, have ? key.data() : nullptr,
					next.data());
				if (rc == -ENOENT)
					break;
				if (rc != 0)
					return fail(-rc, "export: map '" + s->name +
								 "': next key: " +
								 errno_name(-rc));
				key.swap(next);
				have = true;
				rc = ops->lookup_copy(state, key.data(),
						      value.data());
				if (rc == -ENOENT)
					continue; // deleted meanwhile
				if (rc != 0)
					return fail(-rc, "export: map '" + s->name +
								 "': lookup: " +
								 errno_name(-rc));
				out += first_entry ? "[" : ", [";
				first_entry = false;
				put_hex(out, key.data(), key.size());
				out += ", ";
				put_hex(out, value.data(), value.size());
				out += ']';
			}
			out += ']';
		} else if (auto *s = std::get_if<prog_spec>(&info->spec)) {
			w.str("name", s->name);
			w.named("type", prog_type_name(s->type), s->type);
			w.named("expected_attach_type",
				attach_type_name(s->expected_attach_type),
				s->expected_attach_type);
			w.num("attach_btf_id", s->attach_btf_id);
			w.num("prog_flags", s->prog_flags);
			w.num("kern_version", s->kern_version);
			w.str("license", s->license);
			w.hex("insns", s->insns.data(),
			      s->insns.size() * sizeof(vm::insn));
			w.key("fd_array");
			out += '[';
			for (size_t i = 0; i < s->fd_array.size(); i++)
				out += (i ? ", " : "") + std::to_string(s->fd_array[i]);
			out += ']';
		} else if (auto *s = std::get_if<link_spec>(&info->spec)) {
			w.num("prog_id", s->prog_id);
			w.id_or_null("target_id", s->target_id);
			w.named("attach_type", attach_type_name(s->attach_type),
				s->attach_type);
			w.num("flags", s->flags);
			w.u64str("cookie", s->cookie);
		} else if (auto *s = std::get_if<perf_event_spec>(&info->spec)) {
			w.str("type", perf_event_type_name(s->type));
			w.str("path", s->path);
			w.u64str("offset", s->offset);
			w.str("symbol", s->symbol);
			w.num("pid", s->pid);
			w.u64str("ref_ctr_offset", s->ref_ctr_offset);
			w.num("syscall_id", s->syscall_id);
			w.boolean("syscall_exit", s->syscall_exit);
			w.str("custom_name", s->custom_name);
			w.u64str("custom_config", s->custom_config);
		} else if (auto *s = std::get_if<btf_spec>(&info->spec)) {
			w.hex("data", s->data.data(), s->data.size());
		}
		w.close();
	}
	out += "\n]}\n";
	return out;
}

status registry::import_json(std::string_view text)
{
	auto doc = json::parse(text);
	if (!doc)
		return fail(EINVAL, "import: malformed JSON: " + doc.error().message);
	if (doc->t != json::value::type::object)
		return fail(EINVAL, "import: the document is not a JSON object");
	const json::value *format = doc->get("format");
	if (!format || format->t != json::value::type::string ||
	    format->s != JSON_FORMAT_NAME)
		return fail(EINVAL, std::string("import: not a bpftime registry "
						"document (\"format\" is not \"") +
					    JSON_FORMAT_NAME + "\")");
	fields top{ *doc, "import" };
	uint32_t version;
	{
		auto v = top.u32("version");
		if (!v)
			return std::move(v).error();
		version = *v;
	}
	if (version != JSON_FORMAT_VERSION)
		return fail(EPROTONOSUPPORT,
			    "import: document version " + std::to_string(version) +
				    ", this bpftime reads version " +
				    std::to_string(JSON_FORMAT_VERSION));
	const json::value *handlers = doc->get("handlers");
	if (!handlers || handlers->t != json::value::type::array)
		return fail(EINVAL, "import: \"handlers\" is missing or not an "
				    "array");

	// Everything is read and checked before anything is created.
	std::vector<planned> plan;
	std::set<uint32_t> ids;
	for (size_t i = 0; i < handlers->a.size(); i++) {
		auto p = read_handler(handlers->a[i], i, capacity());
		if (!p)
			return fail(p.error().code, "import: " + p.error().message);
		if (!ids.insert(p->id).second)
			return fail(EINVAL, "import: handler #" + std::to_string(i) +
						    ": id " + std::to_string(p->id) +
						    " appears twice");
		if (auto *m = std::get_if<map_spec>(&p->spec);
		    m && !find_map_ops(m->type))
			return fail(EINVAL, "import: map '" + m->name + "' (id " +
						    std::to_string(p->id) + "): " +
						    missing_ops_reason(m->type));
		plan.push_back(std::move(*p));
	}
	std::stable_sort(plan.begin(), plan.end(),
			 [](const planned &a, const planned &b) {
				 return rank(a.kind) < rank(b.kind);
			 });

	auto guard = impl_->lock();
	if (!guard)
		return std::move(guard).error();
	if (uint32_t n = size(); n != 0)
		return fail(ENOTEMPTY, "import: the registry holds " +
					       std::to_string(n) +
					       " handlers; import needs an empty "
					       "registry");

	std::vector<handle> created;
	auto undo = [&](const bpftime::error &e) -> status {
		for (auto it = created.rbegin(); it != created.rend(); ++it)
			(void)impl_->release_locked(it->id, it->generation, true);
		return fail(e.code, "import: " + e.message);
	};
	// Maps may name other maps as inner maps: create in passes until
	// every map whose inner map exists is made.
	std::vector<bool> done(plan.size(), false);
	for (bool progress = true; progress;) {
		progress = false;
		for (size_t i = 0; i < plan.size(); i++) {
			if (done[i])
				continue;
			planned &p = plan[i];
			if (auto *m = std::get_if<map_spec>(&p.spec);
			    m && m->inner_map_id != NO_ID &&
			    kind_of(m->inner_map_id) != handler_kind::map &&
			    ids.count(m->inner_map_id))
				continue; // its inner map comes later
			result<handle> h = fail(EINVAL, "");
			std::visit(
				[&](const auto &s) {
					using T = std::decay_t<decltype(s)>;
					if constexpr (std::is_same_v<T, map_spec>)
						h = impl_->create_map_locked(s, p.id);
					else if constexpr (std::is_same_v<T, prog_spec>)
						h = impl_->create_prog_locked(s, p.id);
					else if constexpr (std::is_same_v<T, link_spec>)
						h = impl_->create_link_locked(s, p.id);
					else if constexpr (std::is_same_v<T,
									 perf_event_spec>)
						h = impl_->create_perf_event_locked(
							s, p.id);
					else
						h = impl_->create_btf_locked(s.data,
									     p.id);
				},
				p.spec);
			if (!h)
				return undo(h.error());
			created.push_back(*h);
			done[i] = true;
			progress = true;
			if (p.kind != handler_kind::map)
				continue;
			auto obj = impl_->object_at(p.id, handler_kind::map, "map");
			map_handler &mh = std::get<map_handler>((*obj)->value);
			const map_ops *ops = find_map_ops(mh.attr.map_type);
			void *state = impl_->at<void>(mh.state_offset);
			for (size_t e = 0; e < p.entries.size(); e++) {
				int rc = ops->update(state, p.entries[e].first.data(),
						     p.entries[e].second.data(),
						     BPF_ANY);
				if (rc != 0)
					return undo(bpftime::error{
						-rc,
						"map '" +
							std::get<map_spec>(p.spec).name +
							"' (id " + std::to_string(p.id) +
							"): entry " + std::to_string(e) +
							": update: " + errno_name(-rc) });
			}
			// Frozen after its contents are written, as the loader
			// that froze it did.
			if (std::get<map_spec>(p.spec).frozen)
				std::atomic_ref<uint32_t>(mh.frozen).store(1);
		}
	}
	for (size_t i = 0; i < plan.size(); i++)
		if (!done[i])
			return undo(bpftime::error{
				EINVAL, "map (id " + std::to_string(plan[i].id) +
						"): its inner map is never created" });
	return {};
}

} // namespace bpftime::handlers
