// json_io.cpp: registry::export_json and registry::import_json (json.hpp
// describes the document). The fields of each handler are read and written
// from the field lists of fields.hpp; a codec (field_codec) decides how a
// value looks in the document.
#include "json/json_text.hpp"
#include "registry/registry_impl.hpp"

#include <bpftime/common/hex.hpp>
#include <bpftime/handlers/fields.hpp>
#include <bpftime/handlers/json.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <map>
#include <set>

namespace bpftime::handlers {
namespace {

// --- writing -------------------------------------------------------------

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
	void str(const char *k, std::string_view v)
	{
		key(k);
		json::write_string(out, v);
	}
	void close()
	{
		out += '}';
	}
};

// One field, by codec.
namespace put {

void field(object_writer &w, field_codec::u32, const char *k, uint32_t v)
{
	w.num(k, v);
}
void field(object_writer &w, field_codec::i32, const char *k, int32_t v)
{
	w.num(k, v);
}
void field(object_writer &w, field_codec::id, const char *k, uint32_t v)
{
	w.key(k);
	w.out += v == NO_ID ? "null" : std::to_string(v);
}
void field(object_writer &w, field_codec::u64, const char *k, uint64_t v)
{
	w.key(k);
	w.out += '"' + std::to_string(v) + '"';
}
void field(object_writer &w, field_codec::flag, const char *k, bool v)
{
	w.key(k);
	w.out += v ? "true" : "false";
}
void field(object_writer &w, field_codec::atomic_flag, const char *k, bool v)
{
	field(w, field_codec::flag{}, k, v);
}
void field(object_writer &w, field_codec::string, const char *k,
	   const std::string &v)
{
	w.str(k, v);
}
void field(object_writer &w, field_codec::obj_name, const char *k,
	   const std::string &v)
{
	w.str(k, v);
}
// A kernel enum: its name when it has one, else the number.
void named(object_writer &w, const char *k, std::string_view name, uint32_t v)
{
	w.key(k);
	if (name.empty())
		w.out += std::to_string(v);
	else
		json::write_string(w.out, name);
}
void field(object_writer &w, field_codec::map_type, const char *k, uint32_t v)
{
	named(w, k, map_type_name(v), v);
}
void field(object_writer &w, field_codec::prog_type, const char *k, uint32_t v)
{
	named(w, k, prog_type_name(v), v);
}
void field(object_writer &w, field_codec::attach_type, const char *k,
	   uint32_t v)
{
	named(w, k, attach_type_name(v), v);
}
void field(object_writer &w, field_codec::perf_type, const char *k,
	   perf_event_type v)
{
	w.str(k, perf_event_type_name(v));
}
void field(object_writer &w, field_codec::bytes, const char *k,
	   const std::vector<uint8_t> &v)
{
	w.key(k);
	json::write_hex(w.out, v.data(), v.size());
}
void field(object_writer &w, field_codec::insns, const char *k,
	   const std::vector<vm::insn> &v)
{
	w.key(k);
	json::write_hex(w.out, v.data(), v.size() * sizeof(vm::insn));
}
void field(object_writer &w, field_codec::id_list, const char *k,
	   const std::vector<uint32_t> &v)
{
	w.key(k);
	w.out += '[';
	for (size_t i = 0; i < v.size(); i++)
		w.out += (i ? ", " : "") + std::to_string(v[i]);
	w.out += ']';
}

// Derived fields (a prog's map ids) are not in the document.
template <class Codec, class V>
void by_role(field_role::derived, object_writer &, Codec, const char *,
	     const V &)
{
}
template <class Role, class Codec, class V>
void by_role(Role, object_writer &w, Codec c, const char *k, const V &v)
{
	field(w, c, k, v);
}

#define BPFTIME_JSON_PUT(member, shared, json_key, js_key, codec, role)        \
	by_role(field_role::role{}, w, field_codec::codec{}, json_key, s.member);
#define BPFTIME_JSON_WRITER(kind, spec, handler, FIELDS)                       \
	void fields(object_writer &w, const spec &s)                           \
	{                                                                      \
		FIELDS(BPFTIME_JSON_PUT)                                       \
	}
BPFTIME_HANDLER_KINDS(BPFTIME_JSON_WRITER)
#undef BPFTIME_JSON_WRITER
#undef BPFTIME_JSON_PUT

} // namespace put

// --- reading ---------------------------------------------------------------

// Field accessors that name the handler and the field in their errors. They
// read the tree with checked accessors only: nothing here throws.
struct fields {
	const json::value &v;
	std::string where; // "handler #3 (id 7)"

	failure bad(const char *name, const std::string &why) const
	{
		return fail(EINVAL, where + ": " + name + ": " + why);
	}

	const json::value *find(const char *name) const
	{
		auto it = v.find(name);
		return it == v.end() ? nullptr : &*it;
	}

	result<const json::value *> need(const char *name,
					 json::value::value_t t) const
	{
		const json::value *f = find(name);
		if (!f)
			return bad(name, "missing");
		if (f->type() != t)
			return bad(name, "wrong type");
		return f;
	}

	// An integer in [lo, hi]. A number with a fraction or an exponent
	// (nlohmann's number_float) is not one, whatever its value: integers
	// are read as uint64_t / int64_t, never through double.
	template <class T>
	result<T> integer_value(const char *name, const json::value &f, T lo,
				T hi) const
	{
		bool ok = false;
		T x{};
		if (f.is_number_unsigned()) {
			uint64_t u = f.get<uint64_t>();
			ok = u <= uint64_t(hi) && (lo <= 0 || u >= uint64_t(lo));
			x = T(u);
		} else if (f.is_number_integer()) {
			int64_t i = f.get<int64_t>();
			ok = i >= int64_t(lo) && i <= int64_t(hi);
			x = T(i);
		}
		if (!ok) {
			std::string why = "'";
			why += f.dump();
			why += "' is not an integer in [";
			why += std::to_string(lo);
			why += ", ";
			why += std::to_string(hi);
			why += "]";
			return bad(name, why);
		}
		return x;
	}

	template <class T> result<T> integer(const char *name, T lo, T hi) const
	{
		const json::value *f = find(name);
		if (!f)
			return bad(name, "missing");
		if (!f->is_number())
			return bad(name, "expected a number");
		return integer_value<T>(name, *f, lo, hi);
	}

	result<uint32_t> u32(const char *name) const
	{
		return integer<uint32_t>(name, 0, UINT32_MAX);
	}

	result<std::string> str(const char *name) const
	{
		auto f = need(name, json::value::value_t::string);
		if (!f)
			return std::move(f).error();
		return (*f)->get_ref<const std::string &>();
	}

	// A kernel enum by name, or its number.
	result<uint32_t> named(const char *name,
			       std::optional<uint32_t> (*from)(std::string_view)
				       noexcept) const
	{
		const json::value *f = find(name);
		if (f && f->is_string()) {
			const auto &s = f->get_ref<const std::string &>();
			auto x = from(s);
			if (!x)
				return bad(name, "unknown name '" + s + "'");
			return *x;
		}
		return u32(name);
	}

	result<std::vector<uint8_t>> hex(const char *name,
					 const json::value *f = nullptr) const
	{
		if (!f) {
			auto g = need(name, json::value::value_t::string);
			if (!g)
				return std::move(g).error();
			f = *g;
		}
		if (!f->is_string())
			return bad(name, "expected a hex string");
		const auto &s = f->get_ref<const std::string &>();
		if (s.size() % 2)
			return bad(name, "odd number of hex digits");
		std::vector<uint8_t> out(s.size() / 2);
		for (size_t i = 0; i < out.size(); i++) {
			int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
			if (hi < 0 || lo < 0)
				return bad(name, "not a hex string");
			out[i] = uint8_t(hi << 4 | lo);
		}
		return out;
	}

	// One field, by codec.
	status get(field_codec::u32, const char *k, uint32_t &out) const
	{
		return assign(u32(k), out);
	}
	status get(field_codec::i32, const char *k, int32_t &out) const
	{
		return assign(integer<int32_t>(k, -1, INT32_MAX), out);
	}
	status get(field_codec::id, const char *k, uint32_t &out) const
	{
		const json::value *f = find(k);
		if (f && f->is_null()) {
			out = NO_ID;
			return {};
		}
		return assign(integer<uint32_t>(k, 0, NO_ID - 1), out);
	}
	// A decimal string: JavaScript's JSON.parse would round a number
	// past 2^53.
	status get(field_codec::u64, const char *k, uint64_t &out) const
	{
		auto f = str(k);
		if (!f)
			return std::move(f).error();
		const std::string &s = *f;
		uint64_t x = 0;
		auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
		if (s.empty() || ec != std::errc() || end != s.data() + s.size())
			return bad(k, "'" + s + "' is not a decimal u64 string");
		out = x;
		return {};
	}
	status get(field_codec::flag, const char *k, bool &out) const
	{
		auto f = need(k, json::value::value_t::boolean);
		if (!f)
			return std::move(f).error();
		out = (*f)->get<bool>();
		return {};
	}
	status get(field_codec::atomic_flag, const char *k, bool &out) const
	{
		return get(field_codec::flag{}, k, out);
	}
	status get(field_codec::string, const char *k, std::string &out) const
	{
		return assign(str(k), out);
	}
	status get(field_codec::obj_name, const char *k, std::string &out) const
	{
		return assign(str(k), out);
	}
	status get(field_codec::map_type, const char *k, uint32_t &out) const
	{
		return assign(named(k, map_type_from_name), out);
	}
	status get(field_codec::prog_type, const char *k, uint32_t &out) const
	{
		return assign(named(k, prog_type_from_name), out);
	}
	status get(field_codec::attach_type, const char *k, uint32_t &out) const
	{
		return assign(named(k, attach_type_from_name), out);
	}
	status get(field_codec::perf_type, const char *k,
		   perf_event_type &out) const
	{
		auto type = str(k);
		if (!type)
			return std::move(type).error();
		auto t = parse_perf_event_type(*type);
		if (!t)
			return bad(k, "unknown event type '" + *type + "'");
		out = *t;
		return {};
	}
	status get(field_codec::bytes, const char *k,
		   std::vector<uint8_t> &out) const
	{
		return assign(hex(k), out);
	}
	status get(field_codec::insns, const char *k,
		   std::vector<vm::insn> &out) const
	{
		auto raw = hex(k);
		if (!raw)
			return std::move(raw).error();
		if (raw->size() % sizeof(vm::insn))
			return bad(k, "not a whole number of 8-byte "
				      "instructions");
		out.resize(raw->size() / sizeof(vm::insn));
		memcpy(out.data(), raw->data(), raw->size());
		return {};
	}
	status get(field_codec::id_list, const char *k,
		   std::vector<uint32_t> &out) const
	{
		auto a = need(k, json::value::value_t::array);
		if (!a)
			return std::move(a).error();
		for (const json::value &x : **a) {
			if (!x.is_number_integer() ||
			    !integer_value<uint32_t>(k, x, 0, UINT32_MAX))
				return bad(k, "expected map ids");
			out.push_back(uint32_t(x.get<uint64_t>()));
		}
		return {};
	}

	template <class T, class U>
	static status assign(result<T> r, U &out)
	{
		if (!r)
			return std::move(r).error();
		out = std::move(*r);
		return {};
	}

	template <class Codec, class V>
	status by_role(field_role::derived, Codec, const char *, V &) const
	{
		return {};
	}
	template <class Role, class Codec, class V>
	status by_role(Role, Codec c, const char *k, V &out) const
	{
		return get(c, k, out);
	}
};

#define BPFTIME_JSON_GET(member, shared, json_key, js_key, codec, role)        \
	BPFTIME_TRY(f.by_role(field_role::role{}, field_codec::codec{},         \
			      json_key, s.member));
#define BPFTIME_JSON_READER(kind, spec, handler, FIELDS)                       \
	status read_fields(const fields &f, spec &s)                           \
	{                                                                      \
		FIELDS(BPFTIME_JSON_GET)                                       \
		return {};                                                     \
	}
BPFTIME_HANDLER_KINDS(BPFTIME_JSON_READER)
#undef BPFTIME_JSON_READER
#undef BPFTIME_JSON_GET

struct planned {
	uint32_t id;
	handler_kind kind;
	handler_spec spec;
	// map contents, packed key/value pairs
	std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> entries;
};

// A map's "entries": [[key hex, value hex], ...], sized as the map says.
status read_entries(const fields &f, const map_spec &s, planned &p)
{
	auto entries = f.need("entries", json::value::value_t::array);
	if (!entries)
		return std::move(entries).error();
	for (size_t i = 0; i < (*entries)->size(); i++) {
		const json::value &e = (**entries)[i];
		std::string name = "entries[" + std::to_string(i) + "]";
		if (!e.is_array() || e.size() != 2)
			return f.bad(name.c_str(), "expected [key hex, value hex]");
		auto k = f.hex(name.c_str(), &e[0]);
		if (!k)
			return std::move(k).error();
		auto v = f.hex(name.c_str(), &e[1]);
		if (!v)
			return std::move(v).error();
		if (k->size() != s.key_size || v->size() != map_user_value_size(s))
			return f.bad(name.c_str(),
				     "key of " + std::to_string(k->size()) +
					     " and value of " +
					     std::to_string(v->size()) +
					     " bytes; the map has " +
					     std::to_string(s.key_size) + " and " +
					     std::to_string(map_user_value_size(s)));
		p.entries.emplace_back(std::move(*k), std::move(*v));
	}
	return {};
}

template <class Spec> status read_spec(const fields &f, planned &p)
{
	Spec s;
	BPFTIME_TRY(read_fields(f, s));
	if constexpr (std::is_same_v<Spec, map_spec>) {
		BPFTIME_TRY(read_entries(f, s, p));
		BPFTIME_TRY(check_obj_name("map", s.name));
	}
	p.spec = std::move(s);
	return {};
}

result<planned> read_handler(const json::value &h, size_t index,
			     uint32_t capacity)
{
	fields f{ h, "handler #" + std::to_string(index) };
	if (!h.is_object())
		return fail(EINVAL, f.where + ": expected an object");
	planned p{};
	{
		auto id = f.u32("id");
		if (!id)
			return std::move(id).error();
		p.id = *id;
	}
	f.where += " (id " + std::to_string(p.id) + ")";
	if (p.id >= capacity)
		return fail(EINVAL, f.where + ": id is outside the table "
					      "(capacity " +
					    std::to_string(capacity) + ")");
	auto kind = f.str("kind");
	if (!kind)
		return std::move(kind).error();
	bool known = false;
#define BPFTIME_JSON_KIND(K, S, H, FIELDS)                                     \
	if (!known && *kind == #K) {                                           \
		known = true;                                                  \
		p.kind = handler_kind::K;                                      \
		BPFTIME_TRY(read_spec<S>(f, p));                               \
	}
	BPFTIME_HANDLER_KINDS(BPFTIME_JSON_KIND)
#undef BPFTIME_JSON_KIND
	if (!known)
		return fail(EINVAL,
			    f.where + ": kind: unknown kind '" + *kind + "'");
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
	// A map whose type keeps per-process state (map_ops::open: a kernel
	// map's fd, a device mapping) is read through this process's instance
	// of it, opened here, before the registry mutex, under which open may
	// not run (map_ops.hpp).
	std::map<uint32_t, std::shared_ptr<map_instance>> opened;
	std::map<uint32_t, bpftime::error> open_failed;
	for (uint32_t id = 0; id < capacity(); id++) {
		if (kind_of(id) != handler_kind::map)
			continue;
		auto m = map(id);
		if (!m)
			open_failed.emplace(id, std::move(m).error());
		else if ((*m)->ops && (*m)->ops->open)
			opened.emplace(id, std::move(*m));
	}
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
		std::visit([&](const auto &s) { put::fields(w, s); }, info->spec);
		if (auto *s = std::get_if<map_spec>(&info->spec)) {
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
			BPFTIME_TRY(check_map_state(
				ops, state,
				"export: map '" + s->name + "' (id " +
					std::to_string(id) + ")"));
			if (ops->open) {
				if (auto f = open_failed.find(id);
				    f != open_failed.end())
					return fail(f->second.code,
						    "export: " + f->second.message);
				auto it = opened.find(id);
				if (it == opened.end() ||
				    it->second->h != info->h)
					return fail(EAGAIN,
						    "export: map '" + s->name +
							    "' (id " +
							    std::to_string(id) +
							    "): made while the "
							    "export ran; export "
							    "again");
				state = it->second->state;
			}
			w.key("entries");
			out += '[';
			// A stack trace map holds addresses in the processes
			// that recorded them (ASLR makes them meaningless
			// anywhere else), and user space cannot write it back
			// (update is EINVAL): exported without its stacks.
			if (s->type == BPF_MAP_TYPE_STACK_TRACE) {
				out += ']';
				w.close();
				continue;
			}
			std::vector<uint8_t> key(s->key_size), next(s->key_size),
				value(map_user_value_size(*s));
			bool have = false, first_entry = true;
			if (ops->for_each_entry) {
				struct sink {
					std::string *out;
					bool *first;
					size_t ks, vs;
				} sk{ &out, &first_entry, key.size(), value.size() };
				int rc = ops->for_each_entry(
					state,
					[](void *c, const void *k, const void *v) {
						auto *x = static_cast<sink *>(c);
						*x->out += *x->first ? "[" : ", [";
						*x->first = false;
						json::write_hex(*x->out,
								static_cast<const uint8_t *>(k),
								x->ks);
						*x->out += ", ";
						json::write_hex(*x->out,
								static_cast<const uint8_t *>(v),
								x->vs);
						*x->out += ']';
						return 0;
					},
					&sk);
				if (rc != 0)
					return fail(-rc, "export: map '" + s->name +
								 "': entries: " +
								 errno_name(-rc));
			}
			for (; !ops->for_each_entry;) {
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
				// The kernel's ENOTSUPP: values user space cannot
				// read back (a cgroup array's cgroups), not
				// exported.
				if (rc == -524)
					continue;
				if (rc != 0)
					return fail(-rc, "export: map '" + s->name +
								 "': lookup: " +
								 errno_name(-rc));
				out += first_entry ? "[" : ", [";
				first_entry = false;
				json::write_hex(out, key.data(), key.size());
				out += ", ";
				json::write_hex(out, value.data(), value.size());
				out += ']';
			}
			out += ']';
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
		return fail(doc.error().code,
			    "import: malformed JSON: " + doc.error().message);
	if (!doc->is_object())
		return fail(EINVAL, "import: the document is not a JSON object");
	fields top{ *doc, "import" };
	const json::value *format = top.find("format");
	if (!format || !format->is_string() ||
	    format->get_ref<const std::string &>() != JSON_FORMAT_NAME)
		return fail(EINVAL, std::string("import: not a bpftime registry "
						"document (\"format\" is not \"") +
					    JSON_FORMAT_NAME + "\")");
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
	// The exporter's table size: informative, but a document claiming a
	// negative or absurd one is not one of ours.
	if (top.find("capacity")) {
		auto c = top.u32("capacity");
		if (!c)
			return std::move(c).error();
		if (*c == 0 || *c > MAX_FD_COUNT_LIMIT)
			return fail(EINVAL, "import: \"capacity\" " +
						    std::to_string(*c) +
						    " is outside [1, " +
						    std::to_string(MAX_FD_COUNT_LIMIT) +
						    "]");
	}
	const json::value *handlers = top.find("handlers");
	if (!handlers || !handlers->is_array())
		return fail(EINVAL, "import: \"handlers\" is missing or not an "
				    "array");

	// Everything is read and checked before anything is created.
	std::vector<planned> plan;
	std::set<uint32_t> ids;
	for (size_t i = 0; i < handlers->size(); i++) {
		auto p = read_handler((*handlers)[i], i, capacity());
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
	// Maps whose type keeps per-process state (map_ops::open), with
	// entries to write once the mutex is released.
	std::vector<size_t> opened_later;
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
			result<handle> h = std::visit(
				[&](const auto &s) -> result<handle> {
					using S = std::decay_t<decltype(s)>;
					if constexpr (std::is_same_v<S, map_spec>)
						return impl_->create_object<map_handler>(s, p.id);
					else if constexpr (std::is_same_v<S, prog_spec>)
						return impl_->create_object<prog_handler>(s, p.id);
					else if constexpr (std::is_same_v<S, link_spec>)
						return impl_->create_object<link_handler>(s, p.id);
					else if constexpr (std::is_same_v<S, perf_event_spec>)
						return impl_->create_object<perf_event_handler>(
							s, p.id);
					else
						return impl_->create_object<btf_handler>(
							btf_data{ s.data }, p.id);
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
			// Per-process state: written through this process's
			// instance, after the mutex (below).
			if (ops->open) {
				// Its entries are written below through ops->update,
				// which does not look at the flag, so the flag can be
				// set now, under the mutex.
				if (std::get<map_spec>(p.spec).frozen)
					std::atomic_ref<uint32_t>(mh.frozen).store(1);
				if (!p.entries.empty())
					opened_later.push_back(i);
				continue;
			}
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
	if (opened_later.empty())
		return {};
	{
		impl::lock_guard unlock_now(std::move(*guard));
	}
	// map_ops::open may not run under the registry mutex: these maps'
	// entries go through this process's instances, and a failure
	// releases everything the import made, as undo() does.
	auto undo_unlocked = [&](const bpftime::error &e) -> status {
		for (auto it = created.rbegin(); it != created.rend(); ++it)
			(void)release(*it);
		return fail(e.code, "import: " + e.message);
	};
	for (size_t i : opened_later) {
		const planned &p = plan[i];
		const std::string what = "map '" + std::get<map_spec>(p.spec).name +
					 "' (id " + std::to_string(p.id) + ")";
		auto m = map(p.id);
		if (!m)
			return undo_unlocked(bpftime::error{ m.error().code,
							     what + ": " + m.error().message });
		for (size_t e = 0; e < p.entries.size(); e++) {
			int rc = (*m)->ops->update((*m)->state,
						   p.entries[e].first.data(),
						   p.entries[e].second.data(), BPF_ANY);
			if (rc != 0)
				return undo_unlocked(bpftime::error{
					-rc, what + ": entry " + std::to_string(e) +
						     ": update: " + errno_name(-rc) });
		}
	}
	return {};
}

} // namespace bpftime::handlers
