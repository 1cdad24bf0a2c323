// maps_userspace_binding.cpp: node-addon-api glue for
// @bpftime/maps-userspace. The map types live in this addon's copy of the
// core; the registry lives in @bpftime/handlers' addon. This binding only
// hands out the addresses of the static map-ops tables, each as an External
// tagged MAP_OPS_TYPE_TAG, which the TypeScript entry passes to
// registerMapOps() of @bpftime/handlers. Runs on the JS thread.
#include <bpftime/common/napi.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/maps_userspace/perf_consumer.hpp>
#include <bpftime/maps_userspace/ring_consumer.hpp>
#include <bpftime/maps_userspace/user_producer.hpp>

#include <memory>
#include <vector>

namespace {

using bpftime::handlers::map_ops;

constexpr napi_type_tag map_ops_tag = {
	bpftime::handlers::MAP_OPS_TYPE_TAG_LOWER,
	bpftime::handlers::MAP_OPS_TYPE_TAG_UPPER
};

// mapOps() → [{ type, typeName, ops: External }]
Napi::Value MapOps(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto all = bpftime::maps_userspace::all_map_ops();
	Napi::Array out = Napi::Array::New(env, all.size());
	for (size_t i = 0; i < all.size(); i++) {
		// The table is const; the External only carries its address.
		auto ext = Napi::External<map_ops>::New(env, const_cast<map_ops *>(all[i]));
		napi_status st = napi_type_tag_object(env, ext, &map_ops_tag);
		if (st != napi_ok)
			bpftime::napi::throw_error(env, EINVAL,
						   "cannot tag a map-ops table");
		Napi::Object o = Napi::Object::New(env);
		o.Set("type", all[i]->map_type);
		o.Set("typeName", all[i]->type_name);
		o.Set("ops", ext);
		out.Set(uint32_t(i), o);
	}
	return out;
}

// --- what the ring, perf and user-ring objects share ---------------------

// A timeoutMs argument: negative means none (-1 ns).
int64_t timeout_ns_arg(const Napi::CallbackInfo &info, size_t i)
{
	double ms = bpftime::napi::arg(info, i).ToNumber().DoubleValue();
	return ms < 0 ? -1 : int64_t(ms * 1e6);
}

// A promise settled from a worker thread: Execute() runs work() there,
// touching no JS; OnOK() resolves with done(env) on the JS thread. The two
// share whatever state they captured.
template <class Work, class Done>
class promise_worker : public Napi::AsyncWorker {
    public:
	promise_worker(Napi::Env env, Work work, Done done)
		: Napi::AsyncWorker(env),
		  deferred_(Napi::Promise::Deferred::New(env)),
		  work_(std::move(work)), done_(std::move(done))
	{
	}
	Napi::Promise promise() { return deferred_.Promise(); }
	void Execute() override { work_(); }
	void OnOK() override { deferred_.Resolve(done_(Env())); }
	void OnError(const Napi::Error &e) override
	{
		deferred_.Reject(e.Value());
	}

    private:
	Napi::Promise::Deferred deferred_;
	Work work_;
	Done done_;
};

template <class Work, class Done>
Napi::Promise queue_promise(Napi::Env env, Work work, Done done)
{
	auto *w = new promise_worker<Work, Done>(env, std::move(work),
						 std::move(done));
	Napi::Promise p = w->promise();
	w->Queue();
	return p;
}

// A vector handed to JS as a Buffer that owns it.
template <class T>
Napi::Buffer<uint8_t> vector_buffer(Napi::Env env, std::vector<T> &&v)
{
	auto *owned = new std::vector<T>(std::move(v));
	return Napi::Buffer<uint8_t>::New(
		env, reinterpret_cast<uint8_t *>(owned->data()),
		owned->size() * sizeof(T),
		[](Napi::Env, uint8_t *, std::vector<T> *o) { delete o; }, owned);
}

// A wrapped object over a map's mmap region (a Buffer from BpfMap.mmap(),
// referenced so that the segment stays mapped while the object lives) and
// the core object attached to it (Core::attach(data, len)). close() runs on
// the JS thread and ends a pending read or wait.
template <class Self, class Core> class region_wrap : public Napi::ObjectWrap<Self> {
    public:
	static Napi::FunctionReference *ctor;
	std::shared_ptr<Core> core;
	Napi::Reference<Napi::Buffer<uint8_t>> region;

	explicit region_wrap(const Napi::CallbackInfo &info)
		: Napi::ObjectWrap<Self>(info)
	{
	}
	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		core->close();
		return info.Env().Undefined();
	}

	// The exported factory: (region: Buffer) -> Self, tagged.
	static Napi::Value Create(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto buf = bpftime::napi::buffer_arg(info, 0, "region");
		auto c = bpftime::napi::unwrap(
			env, Core::attach(buf.Data(), buf.Length()));
		auto [obj, self] =
			bpftime::napi::new_tagged<Self>(ctor, Self::tag);
		self->core = std::shared_ptr<Core>(std::move(c));
		self->region = Napi::Persistent(buf);
		return obj;
	}
};

template <class Self, class Core>
Napi::FunctionReference *region_wrap<Self, Core>::ctor = nullptr;

// --- RingConsumer: ring_consumer (BPF_MAP_TYPE_RINGBUF) -------------------

using bpftime::maps_userspace::ring_consumer;

class RingConsumer : public region_wrap<RingConsumer, ring_consumer> {
    public:
	static constexpr napi_type_tag tag = { 0x6270667472696e67ULL,
					       0x636f6e73756d6572ULL };
	using region_wrap::region_wrap;

	// read(maxRecords, maxBytes, timeoutMs) ->
	// Promise<{ count, closed, sizes, data }>; the read may sleep on the
	// ring's futex, on the worker thread.
	Napi::Value Read(const Napi::CallbackInfo &info)
	{
		struct batch {
			uint32_t count = 0;
			std::vector<uint8_t> data;
			std::vector<uint32_t> sizes;
		};
		uint32_t max_records = bpftime::napi::u32_arg(info, 0, "maxRecords");
		uint32_t max_bytes = bpftime::napi::u32_arg(info, 1, "maxBytes");
		int64_t timeout_ns = timeout_ns_arg(info, 2);
		auto b = std::make_shared<batch>();
		auto c = core;
		return queue_promise(
			info.Env(),
			[=] {
				b->count = c->read(max_records ? max_records : 1,
						   max_bytes, timeout_ns, b->data,
						   b->sizes);
			},
			[=](Napi::Env env) -> Napi::Value {
				Napi::Object o = Napi::Object::New(env);
				o.Set("count", b->count);
				o.Set("closed", c->closed());
				o.Set("sizes", vector_buffer(env, std::move(b->sizes)));
				o.Set("data", vector_buffer(env, std::move(b->data)));
				return o;
			});
	}
	Napi::Value Stats(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		Napi::Object o = Napi::Object::New(env);
		o.Set("sleeps", bpftime::napi::to_bigint(env, core->sleeps()));
		o.Set("wakeups", bpftime::napi::to_bigint(env, core->wakeups()));
		o.Set("ringSize", Napi::Number::New(env, double(core->ring_size())));
		return o;
	}
};

// --- PerfConsumer: perf_consumer (BPF_MAP_TYPE_PERF_EVENT_ARRAY) ----------

using bpftime::maps_userspace::perf_consumer;

// What one perf read collected on the worker thread.
struct perf_batch {
	std::vector<uint8_t> data;
	std::vector<uint32_t> sizes, cpus;
	std::vector<uint32_t> lost_cpus;
	std::vector<uint64_t> lost;
	static void sample(void *ctx, uint32_t cpu, const void *d, uint32_t size)
	{
		auto *b = static_cast<perf_batch *>(ctx);
		auto *p = static_cast<const uint8_t *>(d);
		b->data.insert(b->data.end(), p, p + size);
		b->sizes.push_back(size);
		b->cpus.push_back(cpu);
	}
	static void lost_fn(void *ctx, uint32_t cpu, uint64_t n)
	{
		auto *b = static_cast<perf_batch *>(ctx);
		b->lost_cpus.push_back(cpu);
		b->lost.push_back(n);
	}
};

class PerfConsumer : public region_wrap<PerfConsumer, perf_consumer> {
    public:
	static constexpr napi_type_tag tag = { 0x6270667470657266ULL,
					       0x636f6e73756d6572ULL };
	using region_wrap::region_wrap;

	// read(timeoutMs) ->
	// Promise<{ count, sizes, cpus, data, lostCount, lostCpus, lost }>
	Napi::Value Read(const Napi::CallbackInfo &info)
	{
		int64_t timeout_ns = timeout_ns_arg(info, 0);
		auto b = std::make_shared<perf_batch>();
		auto c = core;
		return queue_promise(
			info.Env(),
			[=] {
				c->poll(timeout_ns, perf_batch::sample,
					perf_batch::lost_fn, b.get());
			},
			[=](Napi::Env env) -> Napi::Value {
				Napi::Object o = Napi::Object::New(env);
				o.Set("count", uint32_t(b->sizes.size()));
				o.Set("sizes", vector_buffer(env, std::move(b->sizes)));
				o.Set("cpus", vector_buffer(env, std::move(b->cpus)));
				o.Set("data", vector_buffer(env, std::move(b->data)));
				o.Set("lostCount", uint32_t(b->lost.size()));
				o.Set("lostCpus",
				      vector_buffer(env, std::move(b->lost_cpus)));
				o.Set("lost", vector_buffer(env, std::move(b->lost)));
				return o;
			});
	}
	Napi::Value Stats(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		Napi::Object o = Napi::Object::New(env);
		o.Set("sleeps", bpftime::napi::to_bigint(env, core->sleeps()));
		o.Set("lost", bpftime::napi::to_bigint(env, core->lost()));
		return o;
	}
};

// --- UserProducer: user_producer (BPF_MAP_TYPE_USER_RINGBUF) --------------

using bpftime::maps_userspace::user_producer;

// All on the JS thread but waitForRoom: a write never waits.
class UserProducer : public region_wrap<UserProducer, user_producer> {
    public:
	static constexpr napi_type_tag tag = { 0x6270667475727062ULL,
					       0x70726f6475636572ULL };
	using region_wrap::region_wrap;

	// write(data) -> 0, or a negative errno (-ENOSPC, -E2BIG)
	Napi::Value Write(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		Napi::Value v = bpftime::napi::arg(info, 0);
		if (!v.IsTypedArray())
			bpftime::napi::throw_error(env, EINVAL,
						   "Expected Uint8Array for data");
		auto a = v.As<Napi::Uint8Array>();
		if (a.ByteLength() > UINT32_MAX)
			return Napi::Number::New(env, -E2BIG);
		return Napi::Number::New(
			env, core->write(a.Data(), uint32_t(a.ByteLength())));
	}
	Napi::Value FreeBytes(const Napi::CallbackInfo &info)
	{
		return Napi::Number::New(info.Env(), double(core->free_bytes()));
	}
	// waitForRoom(size, timeoutMs) -> Promise<boolean>, on a worker thread.
	Napi::Value WaitForRoom(const Napi::CallbackInfo &info)
	{
		uint32_t size = bpftime::napi::u32_arg(info, 0, "size");
		int64_t timeout_ns = timeout_ns_arg(info, 1);
		auto ok = std::make_shared<bool>(false);
		auto p = core;
		return queue_promise(
			info.Env(),
			[=] { *ok = p->wait_for_room(size, timeout_ns); },
			[=](Napi::Env env) -> Napi::Value {
				return Napi::Boolean::New(env, *ok);
			});
	}
};

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	bpftime::napi::export_common(env, exports);
	exports.Set("mapOps", Napi::Function::New(env, MapOps));
	RingConsumer::ctor = bpftime::napi::export_class<RingConsumer>(
		env, exports, "RingConsumer",
		{ RingConsumer::InstanceMethod("read", &RingConsumer::Read),
		  RingConsumer::InstanceMethod("close", &RingConsumer::Close),
		  RingConsumer::InstanceMethod("stats", &RingConsumer::Stats) });
	exports.Set("ringConsumer", Napi::Function::New(env, RingConsumer::Create));
	PerfConsumer::ctor = bpftime::napi::export_class<PerfConsumer>(
		env, exports, "PerfConsumer",
		{ PerfConsumer::InstanceMethod("read", &PerfConsumer::Read),
		  PerfConsumer::InstanceMethod("close", &PerfConsumer::Close),
		  PerfConsumer::InstanceMethod("stats", &PerfConsumer::Stats) });
	exports.Set("perfConsumer", Napi::Function::New(env, PerfConsumer::Create));
	UserProducer::ctor = bpftime::napi::export_class<UserProducer>(
		env, exports, "UserProducer",
		{ UserProducer::InstanceMethod("write", &UserProducer::Write),
		  UserProducer::InstanceMethod("freeBytes", &UserProducer::FreeBytes),
		  UserProducer::InstanceMethod("waitForRoom", &UserProducer::WaitForRoom),
		  UserProducer::InstanceMethod("close", &UserProducer::Close) });
	exports.Set("userProducer", Napi::Function::New(env, UserProducer::Create));
	return exports;
}

} // namespace

NODE_API_MODULE(bpftime_maps_userspace, Init)
