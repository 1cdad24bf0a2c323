// shm_binding.cpp: node-addon-api glue for @bpftime/shm. Converts arguments,
// calls the core, maps errors to BpftimeError; no logic of its own.
#include <bpftime/common/napi.hpp>
#include <bpftime/shm/robust_mutex.hpp>
#include <bpftime/shm/segment.hpp>

#include <memory>
#include <optional>
#include <unordered_map>

namespace {

using bpftime::napi::throw_error;
using bpftime::napi::unwrap;
using bpftime::shm::segment;
using segment_manager_t = bpftime::shm::segment_manager;

constexpr napi_type_tag segment_tag = { 0x6270667469d5e001ULL, 0x5345474d454e5431ULL };
constexpr napi_type_tag mutex_tag = { 0x6270667469d5e002ULL, 0x4d55544558303031ULL };

// Named objects made from JavaScript get a prefix per kind, because the
// segment's index does not record types: a mutex must never be viewed as
// bytes or the other way round.
constexpr const char *BYTES_PREFIX = "bytes:";
constexpr const char *MUTEX_PREFIX = "mutex:";

class SegmentHandle : public Napi::ObjectWrap<SegmentHandle> {
    public:
	static Napi::FunctionReference *ctor;

	static void Init(Napi::Env env, Napi::Object exports)
	{
		ctor = bpftime::napi::export_class<SegmentHandle>(
			env, exports, "SegmentHandle",
			{ InstanceMethod("info", &SegmentHandle::Info),
			  InstanceMethod("stats", &SegmentHandle::Stats),
			  InstanceMethod("allocate", &SegmentHandle::Allocate),
			  InstanceMethod("lookup", &SegmentHandle::Lookup),
			  InstanceMethod("free", &SegmentHandle::Free),
			  InstanceMethod("objects", &SegmentHandle::Objects),
			  InstanceMethod("mutex", &SegmentHandle::Mutex),
			  InstanceMethod("close", &SegmentHandle::Close) });
	}

	static Napi::Object Wrap(Napi::Env env, segment &&s)
	{
		auto [obj, h] = bpftime::napi::new_tagged<SegmentHandle>(
			ctor, segment_tag);
		h->seg_.emplace(std::move(s));
		return obj;
	}

	SegmentHandle(const Napi::CallbackInfo &info)
		: Napi::ObjectWrap<SegmentHandle>(info)
	{
	}

	segment &get(Napi::Env env)
	{
		if (!seg_)
			throw_error(env, EBADF, "segment is closed");
		return *seg_;
	}

    private:
	std::optional<segment> seg_;

	Napi::Value Info(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto i = get(env).info();
		Napi::Object o = Napi::Object::New(env);
		o.Set("name", i.name);
		o.Set("layoutVersion", i.layout_version);
		o.Set("size", Napi::BigInt::New(env, i.size));
		o.Set("creatorPid", i.creator_pid);
		o.Set("createdAtNs", Napi::BigInt::New(env, i.created_at_ns));
		return o;
	}

	Napi::Value Stats(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto s = get(env).stats();
		Napi::Object o = Napi::Object::New(env);
		o.Set("size", Napi::BigInt::New(env, s.size));
		o.Set("free", Napi::BigInt::New(env, s.free));
		o.Set("used", Napi::BigInt::New(env, s.used));
		o.Set("namedObjects", Napi::BigInt::New(env, s.named_objects));
		return o;
	}

	// A Buffer that views segment memory keeps the mapping alive, so it
	// stays valid after close() of the handle.
	Napi::Value view(Napi::Env env, char *p, size_t len)
	{
		auto *keep = new std::shared_ptr<void>(get(env).keep_alive());
		return Napi::Buffer<uint8_t>::New(
			env, reinterpret_cast<uint8_t *>(p), len,
			[](Napi::Env, uint8_t *, std::shared_ptr<void> *k) {
				delete k;
			},
			keep);
	}

	Napi::Value Allocate(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		std::string name = BYTES_PREFIX +
				   bpftime::napi::string_arg(info, 0, "name");
		uint64_t size = bpftime::napi::u64_arg(info, 1, "size");
		if (size == 0)
			throw_error(env, EINVAL, "allocate '" + name.substr(6) +
							 "': size is 0");
		segment &s = get(env);
		if (s.find<char>(name.c_str()))
			throw_error(env, EEXIST,
				    "segment '" + s.name() + "': object '" +
					    name.substr(6) + "' exists");
		char *p = nullptr;
		try {
			p = s.manager()->construct<char>(name.c_str(),
							 std::nothrow)[size](0);
		} catch (const std::exception &e) {
			throw_error(env, ENOMEM,
				    "segment '" + s.name() + "': allocate '" +
					    name.substr(6) + "': " + e.what());
		}
		if (!p)
			throw_error(env, ENOMEM,
				    "segment '" + s.name() + "': no room for " +
					    std::to_string(size) + " bytes of '" +
					    name.substr(6) + "'");
		return view(env, p, size);
	}

	Napi::Value Lookup(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		std::string name = BYTES_PREFIX +
				   bpftime::napi::string_arg(info, 0, "name");
		auto found = get(env).manager()->find<char>(name.c_str());
		if (!found.first)
			return env.Undefined();
		return view(env, found.first, found.second);
	}

	Napi::Value Free(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		std::string name = bpftime::napi::string_arg(info, 0, "name");
		unwrap(env, get(env).destroy<char>((BYTES_PREFIX + name).c_str()));
		return env.Undefined();
	}

	Napi::Value Objects(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto *mgr = get(env).manager();
		Napi::Array out = Napi::Array::New(env);
		uint32_t n = 0;
		for (auto it = mgr->named_begin(); it != mgr->named_end(); ++it) {
			std::string name(it->name(), it->name_length());
			Napi::Object o = Napi::Object::New(env);
			if (name.rfind(BYTES_PREFIX, 0) == 0) {
				o.Set("kind", "bytes");
				o.Set("name", name.substr(strlen(BYTES_PREFIX)));
			} else if (name.rfind(MUTEX_PREFIX, 0) == 0) {
				o.Set("kind", "mutex");
				o.Set("name", name.substr(strlen(MUTEX_PREFIX)));
			} else {
				o.Set("kind", "native");
				o.Set("name", name);
			}
			// Only byte arrays have a length the caller cares about.
			uint64_t size = 0;
			if (name.rfind(BYTES_PREFIX, 0) == 0)
				size = segment_manager_t::get_instance_length(
					static_cast<const char *>(it->value()));
			o.Set("size", Napi::BigInt::New(env, size));
			out.Set(n++, o);
		}
		return out;
	}

	Napi::Value Mutex(const Napi::CallbackInfo &info);

	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		seg_.reset();
		return info.Env().Undefined();
	}
};

Napi::FunctionReference *SegmentHandle::ctor = nullptr;

class MutexHandle : public Napi::ObjectWrap<MutexHandle> {
    public:
	static Napi::FunctionReference *ctor;

	static void Init(Napi::Env env, Napi::Object exports)
	{
		ctor = bpftime::napi::export_class<MutexHandle>(
			env, exports, "MutexHandle",
			{ InstanceMethod("lock", &MutexHandle::Lock),
			  InstanceMethod("tryLock", &MutexHandle::TryLock),
			  InstanceMethod("unlock", &MutexHandle::Unlock) });
	}

	static Napi::Object Wrap(Napi::Env env, bpftime::shm::robust_mutex *m,
				 std::shared_ptr<void> keep)
	{
		auto [obj, h] =
			bpftime::napi::new_tagged<MutexHandle>(ctor, mutex_tag);
		h->mutex_ = m;
		h->keep_ = std::move(keep);
		return obj;
	}

	MutexHandle(const Napi::CallbackInfo &info)
		: Napi::ObjectWrap<MutexHandle>(info)
	{
	}

    private:
	bpftime::shm::robust_mutex *mutex_ = nullptr;
	std::shared_ptr<void> keep_; // the mapping the mutex lives in

	// The mappings of the locks this process holds, one entry per hold.
	// When a process dies holding a robust mutex, the kernel finds it
	// through the thread's robust list and marks it owner-died for the next
	// locker; it reads it in this process's memory, so the mapping must
	// outlive the hold even when JavaScript has dropped every Segment and
	// mutex object (their finalizers would otherwise unmap it, and the lock
	// would never be recovered). JS thread only.
	static std::unordered_multimap<const void *, std::shared_ptr<void>> &held()
	{
		static auto *h =
			new std::unordered_multimap<const void *,
						    std::shared_ptr<void>>;
		return *h;
	}
	Napi::Value hold(Napi::Env env, bpftime::shm::lock_state s)
	{
		held().emplace(mutex_, keep_);
		return state_value(env, s);
	}

	static Napi::Value state_value(Napi::Env env, bpftime::shm::lock_state s)
	{
		return Napi::String::New(env, s == bpftime::shm::lock_state::recovered ?
						      "recovered" :
						      "acquired");
	}

	// Blocks the calling JS thread; the optional timeout bounds it.
	Napi::Value Lock(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		if (info.Length() > 0 && !info[0].IsUndefined()) {
			uint64_t ms = bpftime::napi::u64_arg(info, 0, "timeoutMs");
			return hold(env, unwrap(env, mutex_->lock_for(ms * 1000000ULL)));
		}
		return hold(env, unwrap(env, mutex_->lock_checked()));
	}

	Napi::Value TryLock(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto r = mutex_->try_lock_checked();
		if (!r && r.error().code == EBUSY)
			return env.Undefined();
		return hold(env, unwrap(env, std::move(r)));
	}

	Napi::Value Unlock(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		unwrap(env, mutex_->unlock_checked());
		if (auto it = held().find(mutex_); it != held().end())
			held().erase(it);
		return env.Undefined();
	}
};

Napi::FunctionReference *MutexHandle::ctor = nullptr;

Napi::Value SegmentHandle::Mutex(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string name = MUTEX_PREFIX + bpftime::napi::string_arg(info, 0, "name");
	segment &s = get(env);
	auto *m = unwrap(env, s.find_or_construct<bpftime::shm::robust_mutex>(
				      name.c_str()));
	return MutexHandle::Wrap(env, m, s.keep_alive());
}

bpftime::shm::segment_options options_arg(const Napi::CallbackInfo &info)
{
	bpftime::shm::segment_options o;
	o.name = bpftime::napi::string_arg(info, 0, "name");
	o.size = bpftime::napi::u64_arg(info, 1, "size");
	o.mode = bpftime::napi::u32_arg(info, 2, "mode");
	return o;
}

Napi::Value Create(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	return SegmentHandle::Wrap(env, unwrap(env, segment::create(options_arg(info))));
}

Napi::Value Open(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	return SegmentHandle::Wrap(
		env, unwrap(env, segment::open(bpftime::napi::string_arg(info, 0, "name"))));
}

Napi::Value OpenOrCreate(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	return SegmentHandle::Wrap(
		env, unwrap(env, segment::open_or_create(options_arg(info))));
}

Napi::Value Remove(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	unwrap(env, segment::remove(bpftime::napi::string_arg(info, 0, "name")));
	return env.Undefined();
}

Napi::Value Exists(const Napi::CallbackInfo &info)
{
	return Napi::Boolean::New(info.Env(),
				  segment::exists(bpftime::napi::string_arg(info, 0, "name")));
}

Napi::Value OptionsFromEnv(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto o = unwrap(env, bpftime::shm::options_from_env());
	Napi::Object out = Napi::Object::New(env);
	out.Set("name", o.name);
	out.Set("size", Napi::BigInt::New(env, o.size));
	return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	bpftime::napi::export_common(env, exports);
	SegmentHandle::Init(env, exports);
	MutexHandle::Init(env, exports);
	exports.Set("create", Napi::Function::New(env, Create));
	exports.Set("open", Napi::Function::New(env, Open));
	exports.Set("openOrCreate", Napi::Function::New(env, OpenOrCreate));
	exports.Set("remove", Napi::Function::New(env, Remove));
	exports.Set("exists", Napi::Function::New(env, Exists));
	exports.Set("optionsFromEnv", Napi::Function::New(env, OptionsFromEnv));
	exports.Set("layoutVersion", Napi::Number::New(env, bpftime::shm::LAYOUT_VERSION));
	exports.Set("defaultName", Napi::String::New(env, bpftime::shm::DEFAULT_SEGMENT_NAME));
	return exports;
}

} // namespace

NODE_API_MODULE(bpftime_shm, Init)
