// result.hpp: the error convention of every bpftime C++ core.
//
// A failing operation reports a kernel-style errno (positive, EINVAL, ENOENT,
// E2BIG ...) together with a message that names the object and the operation,
// the way libbpf does ("map 'counts': update: key too big"). Functions that
// produce a value return result<T>; functions that only succeed or fail return
// status (result<void>). Both are [[nodiscard]].
//
//   bpftime::result<int> parse(std::string_view s) {
//       if (s.empty()) return bpftime::fail(EINVAL, "parse: empty input");
//       return 42;
//   }
//   auto r = parse("x");
//   if (!r) log(r.error().message);
//
// The types are plain values: no exceptions, no allocation unless a message is
// built, so they may cross from a hot path into a target process safely.
#pragma once

#include <cerrno>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace bpftime {

struct error {
	int code = 0;        // positive errno value
	std::string message; // names the object and the operation

	bool operator==(const error &) const = default;
};

// Tag returned by fail(): converts to any result<T>.
struct failure {
	error err;
};

[[nodiscard]] inline failure fail(int code, std::string message)
{
	return failure{ error{ code, std::move(message) } };
}

template <class T> class [[nodiscard]] result {
    public:
	result(T value) : state_(std::in_place_index<0>, std::move(value))
	{
	}
	result(failure f) : state_(std::in_place_index<1>, std::move(f.err))
	{
	}
	result(bpftime::error e) : state_(std::in_place_index<1>, std::move(e))
	{
	}

	bool ok() const noexcept
	{
		return state_.index() == 0;
	}
	explicit operator bool() const noexcept
	{
		return ok();
	}

	T &value() &
	{
		return std::get<0>(state_);
	}
	const T &value() const &
	{
		return std::get<0>(state_);
	}
	T &&value() &&
	{
		return std::get<0>(std::move(state_));
	}
	T *operator->()
	{
		return &value();
	}
	const T *operator->() const
	{
		return &value();
	}
	T &operator*() &
	{
		return value();
	}
	const T &operator*() const &
	{
		return value();
	}

	const bpftime::error &error() const &
	{
		return std::get<1>(state_);
	}
	bpftime::error &&error() &&
	{
		return std::get<1>(std::move(state_));
	}

    private:
	std::variant<T, bpftime::error> state_;
};

template <> class [[nodiscard]] result<void> {
    public:
	result() = default;
	result(failure f) : err_(std::move(f.err)), failed_(true)
	{
	}
	result(bpftime::error e) : err_(std::move(e)), failed_(true)
	{
	}

	bool ok() const noexcept
	{
		return !failed_;
	}
	explicit operator bool() const noexcept
	{
		return ok();
	}
	const bpftime::error &error() const &
	{
		return err_;
	}
	bpftime::error &&error() &&
	{
		return std::move(err_);
	}

    private:
	bpftime::error err_;
	bool failed_ = false;
};

using status = result<void>;

// Propagates the error of an expression that yields a result, naming the
// caller's context: BPFTIME_TRY(status_expr);
#define BPFTIME_TRY(expr)                                                      \
	do {                                                                   \
		if (auto bpftime_try_r_ = (expr); !bpftime_try_r_)             \
			return std::move(bpftime_try_r_).error();              \
	} while (0)

} // namespace bpftime
