// scalar.hpp: the value domain of the type checker (type_check.cpp): a
// tristate number (the kernel's struct tnum, kernel/bpf/tnum.c) for known
// bits, plus signed and unsigned 64-bit intervals, as the kernel's
// bpf_reg_state keeps them. 32-bit views are derived on demand (trunc32,
// sext32) instead of being stored: a 32-bit operation works on the view and
// zero-extends, exactly as the ISA does.
//
// Every operation is sound: the concrete result of the operation on any
// values the inputs describe is described by the output. Precision is lost
// (an interval widens to the full range) wherever a bound would overflow.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace bpftime::vm::detail {

struct tnum {
	uint64_t v = 0; // known bits' values
	uint64_t m = ~0ull; // unknown bits

	static constexpr tnum constant(uint64_t x) noexcept
	{
		return { x, 0 };
	}
	static constexpr tnum unknown() noexcept
	{
		return { 0, ~0ull };
	}
	bool is_const() const noexcept
	{
		return m == 0;
	}
	bool operator==(const tnum &) const = default;

	// The smallest tnum holding every value of [min, max] (tnum_range).
	static tnum range(uint64_t min, uint64_t max) noexcept
	{
		const uint64_t chi = min ^ max;
		if (chi == 0)
			return constant(min);
		const int bits = 64 - __builtin_clzll(chi);
		if (bits > 63)
			return unknown();
		const uint64_t delta = (1ull << bits) - 1;
		return { min & ~delta, delta };
	}
	friend tnum operator+(tnum a, tnum b) noexcept
	{
		const uint64_t sm = a.m + b.m, sv = a.v + b.v;
		const uint64_t sigma = sm + sv, chi = sigma ^ sv;
		const uint64_t mu = chi | a.m | b.m;
		return { sv & ~mu, mu };
	}
	friend tnum operator-(tnum a, tnum b) noexcept
	{
		const uint64_t dv = a.v - b.v;
		const uint64_t alpha = dv + a.m, beta = dv - b.m;
		const uint64_t mu = (alpha ^ beta) | a.m | b.m;
		return { dv & ~mu, mu };
	}
	friend tnum operator&(tnum a, tnum b) noexcept
	{
		const uint64_t alpha = a.v | a.m, beta = b.v | b.m;
		const uint64_t v = a.v & b.v;
		return { v, alpha & beta & ~v };
	}
	friend tnum operator|(tnum a, tnum b) noexcept
	{
		const uint64_t v = a.v | b.v, mu = a.m | b.m;
		return { v, mu & ~v };
	}
	friend tnum operator^(tnum a, tnum b) noexcept
	{
		const uint64_t v = a.v ^ b.v, mu = a.m | b.m;
		return { v & ~mu, mu };
	}
	tnum shl(unsigned s) const noexcept
	{
		return { v << s, m << s };
	}
	tnum shr(unsigned s) const noexcept
	{
		return { v >> s, m >> s };
	}
	tnum sar(unsigned s) const noexcept
	{
		return { uint64_t(int64_t(v) >> s), uint64_t(int64_t(m) >> s) };
	}
	// tnum_mul: shift-and-add over the bits of a.
	friend tnum operator*(tnum a, tnum b) noexcept
	{
		const uint64_t acc_v = a.v * b.v;
		tnum acc_m = constant(0);
		while (a.v || a.m) {
			if (a.v & 1)
				acc_m = acc_m + tnum{ 0, b.m };
			else if (a.m & 1)
				acc_m = acc_m + tnum{ 0, b.v | b.m };
			a = a.shr(1);
			b = b.shl(1);
		}
		return constant(acc_v) + acc_m;
	}
	tnum intersect(tnum b) const noexcept
	{
		const uint64_t vv = v | b.v, mu = m & b.m;
		return { vv & ~mu, mu };
	}
	// Does this tnum describe every value b describes (tnum_in)?
	bool contains(tnum b) const noexcept
	{
		if (b.m & ~m)
			return false;
		return v == (b.v & ~m);
	}
	tnum cast(unsigned bytes) const noexcept
	{
		if (bytes >= 8)
			return *this;
		const uint64_t mask = (1ull << (bytes * 8)) - 1;
		return { v & mask, m & mask };
	}
};

struct scalar {
	tnum var = tnum::unknown();
	int64_t smin = std::numeric_limits<int64_t>::min();
	int64_t smax = std::numeric_limits<int64_t>::max();
	uint64_t umin = 0;
	uint64_t umax = ~0ull;

	bool operator==(const scalar &) const = default;

	static scalar unknown() noexcept
	{
		return {};
	}
	static scalar constant(uint64_t x) noexcept
	{
		return { tnum::constant(x), int64_t(x), int64_t(x), x, x };
	}
	static scalar urange(uint64_t lo, uint64_t hi) noexcept
	{
		scalar s;
		s.umin = lo;
		s.umax = hi;
		s.sync();
		return s;
	}
	static scalar srange(int64_t lo, int64_t hi) noexcept
	{
		scalar s;
		s.smin = lo;
		s.smax = hi;
		s.sync();
		return s;
	}
	// A value of `bytes` bytes zero-extended (a narrow load).
	static scalar of_size(unsigned bytes) noexcept
	{
		if (bytes >= 8)
			return unknown();
		return urange(0, (1ull << (bytes * 8)) - 1);
	}
	bool is_const() const noexcept
	{
		return var.is_const();
	}
	uint64_t value() const noexcept
	{
		return var.v;
	}
	bool empty() const noexcept
	{
		return umin > umax || smin > smax ||
		       (var.v & var.m) != 0 || umin > (var.v | var.m) ||
		       umax < var.v;
	}
	// Tightens the intervals and the tnum against each other: the
	// kernel's reg_bounds_sync (update, deduce, bound_offset, update).
	void sync() noexcept
	{
		for (int round = 0; round < 2; round++) {
			smin = std::max(smin, int64_t(var.v | (var.m & (1ull << 63))));
			smax = std::min(smax, int64_t(var.v | (var.m & ~(1ull << 63))));
			umin = std::max(umin, var.v);
			umax = std::min(umax, var.v | var.m);
			if (uint64_t(smin) <= uint64_t(smax)) {
				umin = std::max(umin, uint64_t(smin));
				umax = std::min(umax, uint64_t(smax));
			}
			if (int64_t(umin) <= int64_t(umax)) {
				smin = std::max(smin, int64_t(umin));
				smax = std::min(smax, int64_t(umax));
			}
			if (umin <= umax)
				var = var.intersect(tnum::range(umin, umax));
		}
	}
	// Is every value of b a value of this one (the kernel's range_within
	// plus tnum_in)?
	bool contains(const scalar &b) const noexcept
	{
		return smin <= b.smin && b.smax <= smax && umin <= b.umin &&
		       b.umax <= umax && var.contains(b.var);
	}
};

// The low 32 bits, zero-extended: what a 32-bit operation reads.
inline scalar trunc32(const scalar &x) noexcept
{
	constexpr uint64_t M = 0xffffffffull;
	scalar r;
	if ((x.umin >> 32) == (x.umax >> 32)) {
		r.umin = x.umin & M;
		r.umax = x.umax & M;
	} else if ((uint64_t(x.smin) >> 32) == (uint64_t(x.smax) >> 32)) {
		r.umin = uint64_t(x.smin) & M;
		r.umax = uint64_t(x.smax) & M;
	} else {
		r.umax = M;
	}
	r.var = x.var.cast(4);
	r.smin = 0;
	r.smax = int64_t(M);
	r.sync();
	return r;
}

// The low 32 bits, sign-extended: what a signed 32-bit operation reads.
inline scalar sext32(const scalar &x) noexcept
{
	const scalar t = trunc32(x);
	scalar r;
	if (t.umax <= 0x7fffffffull) {
		r = t;
	} else if (t.umin >= 0x80000000ull) {
		r.smin = int64_t(int32_t(uint32_t(t.umin)));
		r.smax = int64_t(int32_t(uint32_t(t.umax)));
	} else {
		r.smin = std::numeric_limits<int32_t>::min();
		r.smax = std::numeric_limits<int32_t>::max();
	}
	const tnum lo = t.var;
	if (lo.m & (1ull << 31))
		r.var = { lo.v, lo.m | 0xffffffff00000000ull };
	else if (lo.v & (1ull << 31))
		r.var = { lo.v | 0xffffffff00000000ull, lo.m };
	else
		r.var = lo;
	r.sync();
	return r;
}

// Sign-extends the low `bits` bits (movsx, ldxsx).
inline scalar sext(const scalar &x, unsigned bits) noexcept
{
	if (bits >= 64)
		return x;
	if (x.is_const()) {
		const unsigned sh = 64 - bits;
		return scalar::constant(uint64_t(int64_t(x.value() << sh) >> sh));
	}
	const uint64_t half = 1ull << (bits - 1);
	if (x.umax < half)
		return x; // non-negative and narrow: unchanged
	return scalar::srange(-int64_t(half), int64_t(half - 1));
}

} // namespace bpftime::vm::detail
