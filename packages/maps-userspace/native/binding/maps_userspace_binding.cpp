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

using bpftime::maps_userspace::ring_consumer;

constexpr napi_type_tag ring_consumer_tag = { 0x6270667472696e67ULL,
					      0x636f6e73756d6572ULL };

// RingConsumer: ring_consumer over a ring buffer map's mmap region (a
// Buffer from BpfMap.mmap(), which keeps the segment mapped while it
// lives). read() runs on a worker thread, where it may sleep on the ring's
// futex; close() runs on the JS thread and wakes it.
class RingConsumer : public Napi::ObjectWrap<RingConsumer> {
    public:
	static Napi::FunctionReference *ctor;

	RingConsumer(const Napi::CallbackInfo &info)
		: Napi::ObjectWrap<RingConsumer>(info)
	{
	}

	std::shared_ptr<ring_consumer> consumer;
	Napi::Reference<Napi::Buffer<uint8_t>> region;

	Napi::Value Read(const Napi::CallbackInfo &info);
	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		consumer->close();
		return info.Env().Undefined();
	}
	Napi::Value Stats(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		Napi::Object o = Napi::Object::New(env);
		o.Set("sleeps", bpftime::napi::to_bigint(env, consumer->sleeps()));
		o.Set("wakeups",
		      bpftime::napi::to_bigint(env, consumer->wakeups()));
		o.Set("ringSize", Napi::Number::New(env, double(consumer->ring_size())));
		return o;
	}
};

Napi::FunctionReference *RingConsumer::ctor = nullptr;

// One read: Execute() (worker thread) reads into vectors, touching no JS;
// OnOK() builds { count, sizes, data }.
class ReadWorker : public Napi::AsyncWorker {
    public:
	ReadWorker(Napi::Env env, std::shared_ptr<ring_consumer> c,
		   uint32_t max_records, uint64_t max_bytes, int64_t timeout_ns)
		: Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)),
		  c_(std::move(c)), max_records_(max_records),
		  max_bytes_(max_bytes), timeout_ns_(timeout_ns)
	{
	}
	Napi::Promise promise() { return deferred_.Promise(); }
	void Execute() override
	{
		count_ = c_->read(max_records_, max_bytes_, timeout_ns_, data_,
				  sizes_);
	}
	void OnOK() override
	{
		Napi::Env env = Env();
		Napi::Object o = Napi::Object::New(env);
		o.Set("count", count_);
		o.Set("closed", c_->closed());
		auto *sizes = new std::vector<uint32_t>(std::move(sizes_));
		o.Set("sizes",
		      Napi::Buffer<uint8_t>::New(
			      env, reinterpret_cast<uint8_t *>(sizes->data()),
			      sizes->size() * 4,
			      [](Napi::Env, uint8_t *, std::vector<uint32_t> *v) {
				      delete v;
			      },
			      sizes));
		auto *data = new std::vector<uint8_t>(std::move(data_));
		o.Set("data", Napi::Buffer<uint8_t>::New(
				      env, data->data(), data->size(),
				      [](Napi::Env, uint8_t *,
					 std::vector<uint8_t> *v) { delete v; },
				      data));
		deferred_.Resolve(o);
	}
	void OnError(const Napi::Error &e) override
	{
		deferred_.Reject(e.Value());
	}

    private:
	Napi::Promise::Deferred deferred_;
	std::shared_ptr<ring_consumer> c_;
	uint32_t max_records_;
	uint64_t max_bytes_;
	int64_t timeout_ns_;
	uint32_t count_ = 0;
	std::vector<uint8_t> data_;
	std::vector<uint32_t> sizes_;
};

// read(maxRecords, maxBytes, timeoutMs) -> Promise<{ count, closed, sizes, data }>;
// timeoutMs < 0: none.
Napi::Value RingConsumer::Read(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	uint32_t max_records = bpftime::napi::u32_arg(info, 0, "maxRecords");
	uint32_t max_bytes = bpftime::napi::u32_arg(info, 1, "maxBytes");
	double timeout_ms = bpftime::napi::arg(info, 2).ToNumber().DoubleValue();
	int64_t timeout_ns = timeout_ms < 0 ? -1 : int64_t(timeout_ms * 1e6);
	auto *w = new ReadWorker(env, consumer, max_records ? max_records : 1,
				 max_bytes, timeout_ns);
	Napi::Promise p = w->promise();
	w->Queue();
	return p;
}

// ringConsumer(region: Buffer) -> RingConsumer
Napi::Value NewRingConsumer(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto buf = bpftime::napi::buffer_arg(info, 0, "region");
	auto c = bpftime::napi::unwrap(
		env, ring_consumer::attach(buf.Data(), buf.Length()));
	auto [obj, rc] = bpftime::napi::new_tagged<RingConsumer>(
		RingConsumer::ctor, ring_consumer_tag);
	rc->consumer = std::shared_ptr<ring_consumer>(std::move(c));
	rc->region = Napi::Persistent(buf);
	return obj;
}

using bpftime::maps_userspace::perf_consumer;

constexpr napi_type_tag perf_consumer_tag = { 0x6270667470657266ULL,
					      0x636f6e73756d6572ULL };

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

template <class T>
Napi::Buffer<uint8_t> vector_buffer(Napi::Env env, std::vector<T> &&v)
{
	auto *owned = new std::vector<T>(std::move(v));
	return Napi::Buffer<uint8_t>::New(
		env, reinterpret_cast<uint8_t *>(owned->data()),
		owned->size() * sizeof(T),
		[](Napi::Env, uint8_t *, std::vector<T> *o) { delete o; }, owned);
}

// PerfConsumer: perf_consumer over a perf event array's region (BpfMap.mmap()).
class PerfConsumer : public Napi::ObjectWrap<PerfConsumer> {
    public:
	static Napi::FunctionReference *ctor;
	PerfConsumer(const Napi::CallbackInfo &info)
		: Napi::ObjectWrap<PerfConsumer>(info)
	{
	}
	std::shared_ptr<perf_consumer> consumer;
	Napi::Reference<Napi::Buffer<uint8_t>> region;

	Napi::Value Read(const Napi::CallbackInfo &info);
	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		consumer->close();
		return info.Env().Undefined();
	}
	Napi::Value Stats(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		Napi::Object o = Napi::Object::New(env);
		o.Set("sleeps", bpftime::napi::to_bigint(env, consumer->sleeps()));
		o.Set("lost", bpftime::napi::to_bigint(env, consumer->lost()));
		return o;
	}
};

Napi::FunctionReference *PerfConsumer::ctor = nullptr;

class PerfReadWorker : public Napi::AsyncWorker {
    public:
	PerfReadWorker(Napi::Env env, std::shared_ptr<perf_consumer> c,
		       int64_t timeout_ns)
		: Napi::AsyncWorker(env),
		  deferred_(Napi::Promise::Deferred::New(env)), c_(std::move(c)),
		  timeout_ns_(timeout_ns)
	{
	}
	Napi::Promise promise() { return deferred_.Promise(); }
	void Execute() override
	{
		c_->poll(timeout_ns_, perf_batch::sample, perf_batch::lost_fn, &b_);
	}
	void OnOK() override
	{
		Napi::Env env = Env();
		Napi::Object o = Napi::Object::New(env);
		o.Set("count", uint32_t(b_.sizes.size()));
		o.Set("sizes", vector_buffer(env, std::move(b_.sizes)));
		o.Set("cpus", vector_buffer(env, std::move(b_.cpus)));
		o.Set("data", vector_buffer(env, std::move(b_.data)));
		o.Set("lostCount", uint32_t(b_.lost.size()));
		o.Set("lostCpus", vector_buffer(env, std::move(b_.lost_cpus)));
		o.Set("lost", vector_buffer(env, std::move(b_.lost)));
		deferred_.Resolve(o);
	}
	void OnError(const Napi::Error &e) override
	{
		deferred_.Reject(e.Value());
	}

    private:
	Napi::Promise::Deferred deferred_;
	std::shared_ptr<perf_consumer> c_;
	int64_t timeout_ns_;
	perf_batch b_;
};

// read(timeoutMs) -> Promise<{ count, sizes, cpus, data, lostCount, lostCpus, lost }>
Napi::Value PerfConsumer::Read(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	double timeout_ms = bpftime::napi::arg(info, 0).ToNumber().DoubleValue();
	int64_t timeout_ns = timeout_ms < 0 ? -1 : int64_t(timeout_ms * 1e6);
	auto *w = new PerfReadWorker(env, consumer, timeout_ns);
	Napi::Promise p = w->promise();
	w->Queue();
	return p;
}

// perfConsumer(region: Buffer) -> PerfConsumer
Napi::Value NewPerfConsumer(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto buf = bpftime::napi::buffer_arg(info, 0, "region");
	auto c = bpftime::napi::unwrap(
		env, perf_consumer::attach(buf.Data(), buf.Length()));
	auto [obj, pc] = bpftime::napi::new_tagged<PerfConsumer>(
		PerfConsumer::ctor, perf_consumer_tag);
	pc->consumer = std::shared_ptr<perf_consumer>(std::move(c));
	pc->region = Napi::Persistent(buf);
	return obj;
}

using bpftime::maps_userspace::user_producer;

constexpr napi_type_tag user_producer_tag = { 0x6270667475727062ULL,
					      0x70726f6475636572ULL };

// UserProducer: user_producer over a user ring buffer's region. All on the
// JS thread: a write never waits.
class UserProducer : public Napi::ObjectWrap<UserProducer> {
    public:
	static Napi::FunctionReference *ctor;
	UserProducer(const Napi::CallbackInfo &info)
		: Napi::ObjectWrap<UserProducer>(info)
	{
	}
	std::shared_ptr<user_producer> producer;
	Napi::Reference<Napi::Buffer<uint8_t>> region;

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
			env, producer->write(a.Data(), uint32_t(a.ByteLength())));
	}
	Napi::Value FreeBytes(const Napi::CallbackInfo &info)
	{
		return Napi::Number::New(info.Env(),
					 double(producer->free_bytes()));
	}
	Napi::Value WaitForRoom(const Napi::CallbackInfo &info);
	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		producer->close();
		return info.Env().Undefined();
	}
};

// waitForRoom(size, timeoutMs) -> Promise<boolean>, on a worker thread.
class RoomWorker : public Napi::AsyncWorker {
    public:
	RoomWorker(Napi::Env env, std::shared_ptr<user_producer> p,
		   uint32_t size, int64_t timeout_ns)
		: Napi::AsyncWorker(env),
		  deferred_(Napi::Promise::Deferred::New(env)), p_(std::move(p)),
		  size_(size), timeout_ns_(timeout_ns)
	{
	}
	Napi::Promise promise() { return deferred_.Promise(); }
	void Execute() override { ok_ = p_->wait_for_room(size_, timeout_ns_); }
	void OnOK() override
	{
		deferred_.Resolve(Napi::Boolean::New(Env(), ok_));
	}
	void OnError(const Napi::Error &e) override
	{
		deferred_.Reject(e.Value());
	}

    private:
	Napi::Promise::Deferred deferred_;
	std::shared_ptr<user_producer> p_;
	uint32_t size_;
	int64_t timeout_ns_;
	bool ok_ = false;
};

Napi::Value UserProducer::WaitForRoom(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	uint32_t size = bpftime::napi::u32_arg(info, 0, "size");
	double timeout_ms = bpftime::napi::arg(info, 1).ToNumber().DoubleValue();
	int64_t timeout_ns = timeout_ms < 0 ? -1 : int64_t(timeout_ms * 1e6);
	auto *w = new RoomWorker(env, producer, size, timeout_ns);
	Napi::Promise p = w->promise();
	w->Queue();
	return p;
}

Napi::FunctionReference *UserProducer::ctor = nullptr;

// userProducer(region: Buffer) -> UserProducer
Napi::Value NewUserProducer(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto buf = bpftime::napi::buffer_arg(info, 0, "region");
	auto p = bpftime::napi::unwrap(
		env, user_producer::attach(buf.Data(), buf.Length()));
	auto [obj, up] = bpftime::napi::new_tagged<UserProducer>(
		UserProducer::ctor, user_producer_tag);
	up->producer = std::shared_ptr<user_producer>(std::move(p));
	up->region = Napi::Persistent(buf);
	return obj;
}

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	UserProducer::ctor = bpftime::napi::export_class<UserProducer>(
		env, exports, "UserProducer",
		{ Napi::ObjectWrap<UserProducer>::InstanceMethod(
			  "write", &UserProducer::Write),
		  Napi::ObjectWrap<UserProducer>::InstanceMethod(
			  "freeBytes", &UserProducer::FreeBytes),
		  Napi::ObjectWrap<UserProducer>::InstanceMethod(
			  "waitForRoom", &UserProducer::WaitForRoom),
		  Napi::ObjectWrap<UserProducer>::InstanceMethod(
			  "close", &UserProducer::Close) });
	exports.Set("userProducer", Napi::Function::New(env, NewUserProducer));
	PerfConsumer::ctor = bpftime::napi::export_class<PerfConsumer>(
		env, exports, "PerfConsumer",
		{ Napi::ObjectWrap<PerfConsumer>::InstanceMethod(
			  "read", &PerfConsumer::Read),
		  Napi::ObjectWrap<PerfConsumer>::InstanceMethod(
			  "close", &PerfConsumer::Close),
		  Napi::ObjectWrap<PerfConsumer>::InstanceMethod(
			  "stats", &PerfConsumer::Stats) });
	exports.Set("perfConsumer", Napi::Function::New(env, NewPerfConsumer));
	bpftime::napi::export_common(env, exports);
	exports.Set("mapOps", Napi::Function::New(env, MapOps));
	RingConsumer::ctor = bpftime::napi::export_class<RingConsumer>(
		env, exports, "RingConsumer",
		{ Napi::ObjectWrap<RingConsumer>::InstanceMethod(
			  "read", &RingConsumer::Read),
		  Napi::ObjectWrap<RingConsumer>::InstanceMethod(
			  "close", &RingConsumer::Close),
		  Napi::ObjectWrap<RingConsumer>::InstanceMethod(
			  "stats", &RingConsumer::Stats) });
	exports.Set("ringConsumer", Napi::Function::New(env, NewRingConsumer));
	return exports;
}

} // namespace

NODE_API_MODULE(bpftime_maps_userspace, Init)
