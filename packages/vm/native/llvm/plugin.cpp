// plugin.cpp: libbpftime_vm_llvm.so, eBPF to LLVM IR, optimised, then either
// linked in this process by ORC's LLJIT or emitted as an x86-64 relocatable
// object (src/llvm/llvm_abi.h is the whole interface).
//
// Translation keeps the interpreter's semantics (interpreter.cpp): 32-bit
// ALU results zero-extended, shift counts masked, x/0 = 0, x%0 = x, signed
// INT_MIN/-1 = INT_MIN and INT_MIN%-1 = 0, le/be relative to a little-endian
// host, atomics sequentially consistent. Each eBPF function becomes one LLVM
// function; its registers are allocas that mem2reg turns into SSA values,
// its 512-byte frame an alloca, so loads and stores through r10 with a
// constant offset are plain stack slots that SROA promotes. Everything
// else is memory the program reaches through integers (inttoptr), as in the
// kernel's JITs.
#include "../src/llvm/llvm_abi.h"

#include <llvm/ExecutionEngine/JITLink/JITLinkMemoryManager.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ObjectLinkingLayer.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>
#include <llvm/TargetParser/Host.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#define EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using namespace llvm;

// The eBPF encoding (insn.hpp), restated: the plugin shares only llvm_abi.h.
struct binsn {
	uint8_t code;
	uint8_t dst : 4;
	uint8_t src : 4;
	int16_t off;
	int32_t imm;
};
static_assert(sizeof(binsn) == 8);

enum : uint8_t {
	LD = 0x00, LDX = 0x01, ST = 0x02, STX = 0x03, ALU = 0x04, JMP = 0x05,
	JMP32 = 0x06, ALU64 = 0x07,
};
enum : uint8_t { SZ_W = 0x00, SZ_H = 0x08, SZ_B = 0x10, SZ_DW = 0x18 };
enum : uint8_t { M_IMM = 0x00, M_MEM = 0x60, M_MEMSX = 0x80, M_ATOMIC = 0xc0 };
enum : uint8_t {
	OP_ADD = 0x00, OP_SUB = 0x10, OP_MUL = 0x20, OP_DIV = 0x30, OP_OR = 0x40,
	OP_AND = 0x50, OP_LSH = 0x60, OP_RSH = 0x70, OP_NEG = 0x80, OP_MOD = 0x90,
	OP_XOR = 0xa0, OP_MOV = 0xb0, OP_ARSH = 0xc0, OP_END = 0xd0,
};
enum : uint8_t {
	J_JA = 0x00, J_EQ = 0x10, J_GT = 0x20, J_GE = 0x30, J_SET = 0x40,
	J_NE = 0x50, J_SGT = 0x60, J_SGE = 0x70, J_CALL = 0x80, J_EXIT = 0x90,
	J_LT = 0xa0, J_LE = 0xb0, J_SLT = 0xc0, J_SLE = 0xd0,
};
constexpr int32_t A_FETCH = 0x01, A_XCHG = 0xe1, A_CMPXCHG = 0xf1;
constexpr uint8_t PSEUDO_CALL = 1, PSEUDO_KFUNC_CALL = 2;
constexpr int32_t FUNC_TAIL_CALL = 12;
constexpr int STACK = 512;

uint8_t cls(uint8_t c) { return c & 0x07; }
uint8_t op(uint8_t c) { return c & 0xf0; }
uint8_t mode(uint8_t c) { return c & 0xe0; }
uint8_t size_bytes(uint8_t c)
{
	switch (c & 0x18) {
	case SZ_B: return 1;
	case SZ_H: return 2;
	case SZ_W: return 4;
	default: return 8;
	}
}
bool is_lddw(const binsn &i) { return i.code == 0x18; } // LD | IMM | DW

struct translate_error : std::runtime_error {
	using std::runtime_error::runtime_error;
};

class translator {
    public:
	translator(const bpftime_llvm_request &req, LLVMContext &ctx, Module &m)
		: req_(req), ctx_(ctx), m_(m), b_(ctx),
		  insns_(static_cast<const binsn *>(req.insns)),
		  n_(req.insn_count),
		  starts_(req.function_starts,
			  req.function_starts + req.function_count),
		  aot_(req.flags & BPFTIME_LLVM_AOT),
		  bounds_(req.flags & BPFTIME_LLVM_BOUNDS_CHECK)
	{
		i64_ = b_.getInt64Ty();
		i32_ = b_.getInt32Ty();
		ptr_ = b_.getPtrTy();
		fn_ty_ = FunctionType::get(i64_, { i64_, i64_, i64_, i64_, i64_, ptr_ },
					   false);
		helper_ty_ = FunctionType::get(i64_, { i64_, i64_, i64_, i64_, i64_ },
					       false);
	}

	void run()
	{
		for (uint32_t s : starts_) {
			Function *f = Function::Create(
				fn_ty_, GlobalValue::ExternalLinkage,
				BPFTIME_LLVM_FN_PREFIX + std::to_string(s), m_);
			f->setDoesNotThrow();
			f->addFnAttr("frame-pointer", "none");
			fns_[s] = f;
		}
		if (aot_) {
			// Sized once every slot is known: see finish_imports().
			imports_ = new GlobalVariable(
				m_, ArrayType::get(i64_, 0), false,
				GlobalValue::ExternalLinkage, nullptr,
				BPFTIME_LLVM_AOT_IMPORTS);
		}
		for (size_t k = 0; k < starts_.size(); k++) {
			const uint32_t end = k + 1 < starts_.size() ? starts_[k + 1] : n_;
			function(starts_[k], end);
		}
		if (aot_)
			finish_imports();
	}

    private:
	// ---------------------------------------------------------- imports

	// AOT: the value of import slot `key` ("h 1", "l 12"), loaded from the
	// table the loader fills.
	Value *import_slot(const std::string &key)
	{
		auto [it, fresh] = import_index_.try_emplace(key, import_keys_.size());
		if (fresh)
			import_keys_.push_back(key);
		Value *p = b_.CreateConstInBoundsGEP1_64(i64_, imports_, it->second);
		LoadInst *l = b_.CreateLoad(i64_, p);
		l->setMetadata(LLVMContext::MD_invariant_load, MDNode::get(ctx_, {}));
		return l;
	}

	void finish_imports()
	{
		ArrayType *ty = ArrayType::get(i64_, std::max<size_t>(1, import_keys_.size()));
		auto *g = new GlobalVariable(m_, ty, false, GlobalValue::ExternalLinkage,
					     ConstantAggregateZero::get(ty), "");
		imports_->replaceAllUsesWith(g);
		imports_->eraseFromParent();
		g->setName(BPFTIME_LLVM_AOT_IMPORTS);
		g->setAlignment(Align(8));
		// First, taking no slot: whether the code checks its accesses,
		// which the loading vm's bounds-check mode must match.
		std::string desc = bounds_ ? "f 1\n" : "f 0\n";
		for (const std::string &k : import_keys_)
			desc += k + "\n";
		auto *d = new GlobalVariable(
			m_, ArrayType::get(b_.getInt8Ty(), desc.size() + 1), true,
			GlobalValue::ExternalLinkage,
			ConstantDataArray::getString(ctx_, desc, true),
			"bpftime_aot_import_desc");
		d->setSection(BPFTIME_LLVM_AOT_IMPORT_SECTION);
		d->setAlignment(Align(1));
		const std::string bytes(static_cast<const char *>(req_.insns),
					size_t(n_) * 8);
		auto *in = new GlobalVariable(
			m_, ArrayType::get(b_.getInt8Ty(), bytes.size()), true,
			GlobalValue::ExternalLinkage,
			ConstantDataArray::getString(ctx_, bytes, false),
			"bpftime_aot_insns");
		in->setSection(BPFTIME_LLVM_AOT_INSN_SECTION);
		in->setAlignment(Align(8));
		appendToUsed(d);
		appendToUsed(in);
	}

	void appendToUsed(GlobalVariable *g)
	{
		used_.push_back(g);
		if (GlobalVariable *old = m_.getGlobalVariable("llvm.used"))
			old->eraseFromParent();
		ArrayType *ty = ArrayType::get(ptr_, used_.size());
		std::vector<Constant *> vals(used_.begin(), used_.end());
		auto *u = new GlobalVariable(m_, ty, false, GlobalValue::AppendingLinkage,
					     ConstantArray::get(ty, vals), "llvm.used");
		u->setSection("llvm.metadata");
	}

	// A callee of the helper calling convention: an address known now
	// (JIT) or an import slot (AOT).
	Value *callee(uint64_t addr, const std::string &key)
	{
		if (aot_)
			return b_.CreateIntToPtr(import_slot(key), ptr_);
		return b_.CreateIntToPtr(b_.getInt64(addr), ptr_);
	}

	Value *runtime_fn(int index)
	{
		return callee(req_.runtime_addrs ? req_.runtime_addrs[index] : 0,
			      "r " + std::to_string(index));
	}

	// ---------------------------------------------------------- function

	Value *reg_ptr(int r)
	{
		if (r > 10)
			throw translate_error(std::to_string(pc_) + ": register r" +
					      std::to_string(r) + " out of range");
		return regs_[r];
	}
	Value *get(int r)
	{
		return b_.CreateLoad(i64_, reg_ptr(r));
	}
	void set(int r, Value *v)
	{
		if (v->getType() != i64_)
			v = b_.CreateZExt(v, i64_);
		b_.CreateStore(v, reg_ptr(r));
	}

	BasicBlock *block_at(uint32_t pc)
	{
		if (pc < cur_start_ || pc >= cur_end_)
			throw translate_error(std::to_string(pc_) +
					      ": jump out of its function to " +
					      std::to_string(pc));
		auto it = blocks_.find(pc);
		if (it != blocks_.end())
			return it->second;
		BasicBlock *bb = BasicBlock::Create(ctx_, "pc" + std::to_string(pc), cur_fn_);
		blocks_[pc] = bb;
		return bb;
	}

	void function(uint32_t start, uint32_t end)
	{
		cur_start_ = start;
		cur_end_ = end;
		cur_fn_ = fns_.at(start);
		blocks_.clear();
		BasicBlock *entry = BasicBlock::Create(ctx_, "entry", cur_fn_);
		b_.SetInsertPoint(entry);
		for (int r = 0; r <= 10; r++)
			regs_[r] = b_.CreateAlloca(i64_, nullptr, "r" + std::to_string(r));
		run_ = cur_fn_->getArg(5);
		if (!bounds_) {
			stack_ = b_.CreateAlloca(ArrayType::get(b_.getInt8Ty(), STACK), nullptr,
						 "stack");
			stack_->setAlignment(Align(16));
		}
		// Registers a program reads unwritten (only where the non-strict
		// verifier let it load) are 0, as in the interpreter.
		set(0, b_.getInt64(0));
		for (int r = 1; r <= 5; r++)
			set(r, cur_fn_->getArg(r - 1));
		for (int r = 6; r <= 9; r++)
			set(r, b_.getInt64(0));
		if (bounds_) {
			// The run's frame area (llvm_abi.h, offset 8): this
			// frame is [fp - 512, fp), the next one below it.
			fp_slot_ = b_.CreateConstInBoundsGEP1_64(b_.getInt8Ty(), run_, 8);
			fp_ = b_.CreateLoad(i64_, fp_slot_);
			set(10, fp_);
			b_.CreateStore(b_.CreateSub(fp_, b_.getInt64(STACK)), fp_slot_);
		} else {
			Value *top = b_.CreateConstInBoundsGEP1_64(b_.getInt8Ty(), stack_, STACK);
			set(10, b_.CreatePtrToInt(top, i64_));
		}

		// Leaders: the start, every jump target, every instruction after a
		// jump or an exit.
		std::set<uint32_t> leaders{ start };
		for (uint32_t pc = start; pc < end; pc++) {
			const binsn &i = insns_[pc];
			if (is_lddw(i)) {
				pc++;
				continue;
			}
			const uint8_t c = cls(i.code);
			if (c != JMP && c != JMP32)
				continue;
			if (op(i.code) == J_CALL)
				continue;
			if (pc + 1 < end)
				leaders.insert(pc + 1);
			if (op(i.code) == J_EXIT)
				continue;
			const int64_t t = int64_t(pc) + 1 +
					  (c == JMP32 && op(i.code) == J_JA ? i.imm : i.off);
			if (t >= start && t < end)
				leaders.insert(uint32_t(t));
		}
		b_.CreateBr(block_at(start));

		bool terminated = true;
		for (uint32_t pc = start; pc < end; pc++) {
			pc_ = pc;
			if (leaders.count(pc)) {
				BasicBlock *bb = block_at(pc);
				if (!terminated)
					b_.CreateBr(bb);
				b_.SetInsertPoint(bb);
				terminated = false;
			} else if (terminated) {
				// Unreachable code after a jump that no jump
				// targets: the verifier refuses it, skip it.
				if (is_lddw(insns_[pc]))
					pc++;
				continue;
			}
			terminated = instruction(pc);
			if (is_lddw(insns_[pc]))
				pc++;
		}
		if (!terminated) // the verifier guarantees an exit; stay defined
			ret(get(0));
		for (auto &[pc, bb] : blocks_)
			if (!bb->getTerminator()) {
				b_.SetInsertPoint(bb);
				b_.CreateUnreachable();
			}
	}

	void ret(Value *v)
	{
		if (bounds_)
			b_.CreateStore(fp_, fp_slot_);
		b_.CreateRet(v);
	}

	// After a call that may end the run: return at once when it did.
	void check_state()
	{
		Value *st = b_.CreateLoad(i32_, run_);
		Value *ended = b_.CreateICmpNE(st, b_.getInt32(0));
		BasicBlock *bail = BasicBlock::Create(ctx_, "ended", cur_fn_);
		BasicBlock *cont = BasicBlock::Create(ctx_, "cont", cur_fn_);
		b_.CreateCondBr(ended, bail, cont,
				MDBuilder(ctx_).createBranchWeights(1, 1000));
		b_.SetInsertPoint(bail);
		ret(b_.getInt64(0));
		b_.SetInsertPoint(cont);
	}

	// ---------------------------------------------------------- memory

	// The address base + off; a pointer into the frame when base is r10,
	// so that the stack stays visible to the optimiser.
	Value *address(int base, int16_t off, uint8_t size, bool store)
	{
		if (bounds_) {
			Value *addr = b_.CreateAdd(get(base), b_.getInt64(int64_t(off)));
			FunctionType *ft = FunctionType::get(i32_, { ptr_, i64_, i64_, i64_ },
							     false);
			Value *ok = b_.CreateCall(
				ft, runtime_fn(BPFTIME_LLVM_RT_CHECK),
				{ run_, addr, b_.getInt64(size),
				  b_.getInt64((uint64_t(pc_) << 1) | (store ? 1 : 0)) });
			BasicBlock *bad = BasicBlock::Create(ctx_, "oob", cur_fn_);
			BasicBlock *good = BasicBlock::Create(ctx_, "inb", cur_fn_);
			b_.CreateCondBr(b_.CreateICmpEQ(ok, b_.getInt32(0)), bad, good,
					MDBuilder(ctx_).createBranchWeights(1, 1000));
			b_.SetInsertPoint(bad);
			ret(b_.getInt64(0));
			b_.SetInsertPoint(good);
			return b_.CreateIntToPtr(addr, ptr_);
		}
		if (base == 10 && off >= -STACK && off + size <= 0)
			return b_.CreateConstInBoundsGEP1_64(b_.getInt8Ty(), stack_,
							     STACK + off);
		Value *addr = b_.CreateAdd(get(base), b_.getInt64(int64_t(off)));
		return b_.CreateIntToPtr(addr, ptr_);
	}

	Type *int_ty(uint8_t bytes)
	{
		return b_.getIntNTy(bytes * 8);
	}

	// ---------------------------------------------------------- ALU

	Value *udiv(Value *a, Value *s, bool mod)
	{
		Type *t = a->getType();
		Value *zero = ConstantInt::get(t, 0);
		Value *isz = b_.CreateICmpEQ(s, zero);
		Value *safe = b_.CreateSelect(isz, ConstantInt::get(t, 1), s);
		Value *q = mod ? b_.CreateURem(a, safe) : b_.CreateUDiv(a, safe);
		return b_.CreateSelect(isz, mod ? a : zero, q);
	}

	Value *sdiv(Value *a, Value *s, bool mod)
	{
		Type *t = a->getType();
		Value *zero = ConstantInt::get(t, 0);
		Value *m1 = ConstantInt::getSigned(t, -1);
		Value *isz = b_.CreateICmpEQ(s, zero);
		Value *ism1 = b_.CreateICmpEQ(s, m1);
		Value *safe = b_.CreateSelect(b_.CreateOr(isz, ism1), ConstantInt::get(t, 1), s);
		Value *q = mod ? b_.CreateSRem(a, safe) : b_.CreateSDiv(a, safe);
		// x / -1 = -x (wrapping), x % -1 = 0; x / 0 = 0, x % 0 = x.
		Value *v = b_.CreateSelect(ism1, mod ? zero : b_.CreateSub(zero, a), q);
		return b_.CreateSelect(isz, mod ? a : zero, v);
	}

	Value *swap(Value *v, int bits)
	{
		Value *t = b_.CreateTrunc(v, b_.getIntNTy(bits));
		if (bits == 64)
			t = v;
		Function *bs = Intrinsic::getDeclaration(&m_, Intrinsic::bswap,
							 { t->getType() });
		return b_.CreateZExt(b_.CreateCall(bs, { t }), i64_);
	}

	void alu(const binsn &i)
	{
		const bool is64 = cls(i.code) == ALU64;
		const bool x = i.code & 0x08;
		Type *t = is64 ? i64_ : i32_;
		const unsigned w = is64 ? 64 : 32;
		const uint8_t o = op(i.code);
		if (o == OP_END) {
			Value *d = get(i.dst);
			const int bits = i.imm;
			if (bits != 16 && bits != 32 && bits != 64)
				throw translate_error(std::to_string(pc_) + ": bad endianness width " +
						      std::to_string(bits));
			if (is64 || x) // bswap (ALU64), or be (ALU | TO_BE)
				set(i.dst, swap(d, bits));
			else if (bits == 64)
				set(i.dst, d);
			else
				set(i.dst, b_.CreateZExt(b_.CreateTrunc(d, b_.getIntNTy(bits)), i64_));
			return;
		}
		if (o == OP_MOV) {
			Value *v;
			if (!x) {
				v = is64 ? b_.getInt64(int64_t(i.imm)) :
					   b_.getInt64(uint32_t(i.imm));
			} else if (i.off == 0) {
				v = get(i.src);
				if (!is64)
					v = b_.CreateZExt(b_.CreateTrunc(v, i32_), i64_);
			} else {
				Value *s = b_.CreateTrunc(get(i.src), b_.getIntNTy(i.off));
				v = b_.CreateSExt(s, t);
				if (!is64)
					v = b_.CreateZExt(v, i64_);
			}
			set(i.dst, v);
			return;
		}
		Value *d = get(i.dst);
		if (!is64)
			d = b_.CreateTrunc(d, i32_);
		if (o == OP_NEG) {
			set(i.dst, b_.CreateZExt(b_.CreateNeg(d), i64_));
			return;
		}
		Value *s = x ? get(i.src) : b_.getInt64(int64_t(i.imm));
		if (!is64)
			s = b_.CreateTrunc(s, i32_);
		Value *r;
		Value *mask = ConstantInt::get(t, w - 1);
		switch (o) {
		case OP_ADD: r = b_.CreateAdd(d, s); break;
		case OP_SUB: r = b_.CreateSub(d, s); break;
		case OP_MUL: r = b_.CreateMul(d, s); break;
		case OP_OR: r = b_.CreateOr(d, s); break;
		case OP_AND: r = b_.CreateAnd(d, s); break;
		case OP_XOR: r = b_.CreateXor(d, s); break;
		case OP_LSH: r = b_.CreateShl(d, b_.CreateAnd(s, mask)); break;
		case OP_RSH: r = b_.CreateLShr(d, b_.CreateAnd(s, mask)); break;
		case OP_ARSH: r = b_.CreateAShr(d, b_.CreateAnd(s, mask)); break;
		case OP_DIV: r = i.off ? sdiv(d, s, false) : udiv(d, s, false); break;
		case OP_MOD: r = i.off ? sdiv(d, s, true) : udiv(d, s, true); break;
		default:
			throw translate_error(std::to_string(pc_) + ": unknown ALU opcode");
		}
		set(i.dst, is64 ? r : b_.CreateZExt(r, i64_));
	}

	// ---------------------------------------------------------- jumps

	Value *condition(const binsn &i)
	{
		const bool is32 = cls(i.code) == JMP32;
		Value *a = get(i.dst);
		Value *b = (i.code & 0x08) ? get(i.src) : b_.getInt64(int64_t(i.imm));
		if (is32) {
			a = b_.CreateTrunc(a, i32_);
			b = b_.CreateTrunc(b, i32_);
		}
		switch (op(i.code)) {
		case J_EQ: return b_.CreateICmpEQ(a, b);
		case J_NE: return b_.CreateICmpNE(a, b);
		case J_GT: return b_.CreateICmpUGT(a, b);
		case J_GE: return b_.CreateICmpUGE(a, b);
		case J_LT: return b_.CreateICmpULT(a, b);
		case J_LE: return b_.CreateICmpULE(a, b);
		case J_SGT: return b_.CreateICmpSGT(a, b);
		case J_SGE: return b_.CreateICmpSGE(a, b);
		case J_SLT: return b_.CreateICmpSLT(a, b);
		case J_SLE: return b_.CreateICmpSLE(a, b);
		case J_SET:
			return b_.CreateICmpNE(b_.CreateAnd(a, b),
					       ConstantInt::get(a->getType(), 0));
		}
		throw translate_error(std::to_string(pc_) + ": unknown jump opcode");
	}

	Value *call_helper_addr(Value *fn)
	{
		return b_.CreateCall(helper_ty_, fn,
				     { get(1), get(2), get(3), get(4), get(5) });
	}

	void call(const binsn &i)
	{
		if (i.code & 0x08) { // callx: the register holding the id is dst
			FunctionType *ft = FunctionType::get(
				i64_, { ptr_, i64_, i64_, i64_, i64_, i64_, i64_, i64_ }, false);
			set(0, b_.CreateCall(ft, runtime_fn(BPFTIME_LLVM_RT_CALLX),
					     { run_, get(i.dst), b_.getInt64(pc_), get(1), get(2),
					       get(3), get(4), get(5) }));
			check_state();
			return;
		}
		if (i.src == PSEUDO_CALL) {
			const int64_t t = int64_t(pc_) + 1 + i.imm;
			auto it = fns_.find(uint32_t(t));
			if (t < 0 || it == fns_.end())
				throw translate_error(std::to_string(pc_) +
						      ": local call to a pc that starts no function");
			// Frames as the interpreter counts them: a call that would
			// make a ninth ends the run with ELOOP (llvm_abi.h, offset 4).
			Value *slot = b_.CreateConstInBoundsGEP1_64(b_.getInt8Ty(), run_, 4);
			Value *depth = b_.CreateLoad(i32_, slot);
			BasicBlock *deep = BasicBlock::Create(ctx_, "too_deep", cur_fn_);
			BasicBlock *ok = BasicBlock::Create(ctx_, "call", cur_fn_);
			b_.CreateCondBr(b_.CreateICmpUGE(depth, b_.getInt32(7)), deep, ok,
					MDBuilder(ctx_).createBranchWeights(1, 1000));
			b_.SetInsertPoint(deep);
			b_.CreateCall(FunctionType::get(b_.getVoidTy(), { ptr_, i64_, i64_ }, false),
				      runtime_fn(BPFTIME_LLVM_RT_TOO_DEEP),
				      { run_, b_.getInt64(pc_),
					b_.CreateAdd(b_.CreateZExt(depth, i64_), b_.getInt64(2)) });
			ret(b_.getInt64(0));
			b_.SetInsertPoint(ok);
			b_.CreateStore(b_.CreateAdd(depth, b_.getInt32(1)), slot);
			set(0, b_.CreateCall(it->second, { get(1), get(2), get(3), get(4),
							   get(5), run_ }));
			b_.CreateStore(depth, slot);
			check_state();
			return;
		}
		if (i.src == PSEUDO_KFUNC_CALL) {
			uint64_t addr = 0;
			bool found = false;
			for (uint32_t k = 0; k < req_.kfunc_count; k++)
				if (req_.kfunc_ids[k] == uint32_t(i.imm)) {
					addr = req_.kfunc_addrs ? req_.kfunc_addrs[k] : 0;
					found = true;
				}
			if (!found)
				throw translate_error(std::to_string(pc_) + ": unknown kfunc " +
						      std::to_string(uint32_t(i.imm)));
			set(0, call_helper_addr(callee(addr, "k " + std::to_string(uint32_t(i.imm)))));
			check_state();
			return;
		}
		if (i.imm == FUNC_TAIL_CALL) {
			FunctionType *ft = FunctionType::get(i64_, { ptr_, i64_, i64_, i64_ }, false);
			set(0, b_.CreateCall(ft, runtime_fn(BPFTIME_LLVM_RT_TAIL_CALL),
					     { run_, get(1), get(2), get(3) }));
			check_state();
			return;
		}
		const uint32_t id = uint32_t(i.imm);
		if (id >= req_.helper_count || !req_.helper_addrs[id])
			throw translate_error(std::to_string(pc_) + ": call to unknown helper #" +
					      std::to_string(id));
		set(0, call_helper_addr(callee(req_.helper_addrs[id], "h " + std::to_string(id))));
		check_state();
	}

	// ---------------------------------------------------------- one insn

	// Emits instruction pc; true when it ended its block.
	bool instruction(uint32_t pc)
	{
		const binsn &i = insns_[pc];
		const uint8_t c = cls(i.code);
		switch (c) {
		case ALU:
		case ALU64:
			alu(i);
			return false;
		case LD: {
			if (!is_lddw(i) || pc + 1 >= n_)
				throw translate_error(std::to_string(pc) + ": bad lddw");
			const uint64_t v = uint64_t(uint32_t(i.imm)) |
					   uint64_t(uint32_t(insns_[pc + 1].imm)) << 32;
			if (i.src != 0) {
				if (!aot_)
					throw translate_error(std::to_string(pc) +
							      ": lddw not resolved");
				set(i.dst, import_slot("l " + std::to_string(pc)));
			} else {
				set(i.dst, b_.getInt64(v));
			}
			return false;
		}
		case LDX: {
			const uint8_t sz = size_bytes(i.code);
			Value *p = address(i.src, i.off, sz, false);
			LoadInst *l = b_.CreateAlignedLoad(int_ty(sz), p, Align(1));
			Value *v = mode(i.code) == M_MEMSX ? b_.CreateSExt(l, i64_) :
							     b_.CreateZExt(l, i64_);
			set(i.dst, v);
			return false;
		}
		case ST:
		case STX: {
			const uint8_t sz = size_bytes(i.code);
			if (c == STX && mode(i.code) == M_ATOMIC) {
				atomic(i, sz);
				return false;
			}
			Value *p = address(i.dst, i.off, sz, true);
			Value *v = c == ST ? b_.getInt64(int64_t(i.imm)) : get(i.src);
			b_.CreateAlignedStore(b_.CreateTrunc(v, int_ty(sz)), p, Align(1));
			return false;
		}
		case JMP:
		case JMP32: {
			const uint8_t o = op(i.code);
			if (o == J_CALL) {
				call(i);
				return false;
			}
			if (o == J_EXIT) {
				ret(get(0));
				return true;
			}
			if (o == J_JA) {
				const int64_t rel = c == JMP32 ? i.imm : i.off;
				b_.CreateBr(block_at(uint32_t(int64_t(pc) + 1 + rel)));
				return true;
			}
			Value *cond = condition(i);
			BasicBlock *taken = block_at(uint32_t(int64_t(pc) + 1 + i.off));
			BasicBlock *next = block_at(pc + 1);
			b_.CreateCondBr(cond, taken, next);
			return true;
		}
		}
		throw translate_error(std::to_string(pc) + ": unknown opcode");
	}

	void atomic(const binsn &i, uint8_t sz)
	{
		Type *t = int_ty(sz);
		Value *p = address(i.dst, i.off, sz, true);
		Value *s = b_.CreateTrunc(get(i.src), t);
		const auto order = AtomicOrdering::SequentiallyConsistent;
		if (i.imm == A_CMPXCHG) {
			Value *expected = b_.CreateTrunc(get(0), t);
			AtomicCmpXchgInst *x = b_.CreateAtomicCmpXchg(p, expected, s, Align(sz),
								      order, order);
			set(0, b_.CreateZExt(b_.CreateExtractValue(x, 0), i64_));
			return;
		}
		AtomicRMWInst::BinOp bop;
		switch (i.imm & ~A_FETCH) {
		case OP_ADD: bop = AtomicRMWInst::Add; break;
		case OP_OR: bop = AtomicRMWInst::Or; break;
		case OP_AND: bop = AtomicRMWInst::And; break;
		case OP_XOR: bop = AtomicRMWInst::Xor; break;
		default:
			if (i.imm != A_XCHG)
				throw translate_error(std::to_string(pc_) + ": unknown atomic op");
			bop = AtomicRMWInst::Xchg;
		}
		Value *old = b_.CreateAtomicRMW(bop, p, s, Align(sz), order);
		if (i.imm & A_FETCH)
			set(i.src, b_.CreateZExt(old, i64_));
	}

	const bpftime_llvm_request &req_;
	LLVMContext &ctx_;
	Module &m_;
	IRBuilder<> b_;
	const binsn *insns_;
	uint32_t n_;
	std::vector<uint32_t> starts_;
	bool aot_, bounds_;
	Type *i64_, *i32_;
	PointerType *ptr_;
	FunctionType *fn_ty_, *helper_ty_;
	std::map<uint32_t, Function *> fns_;
	GlobalVariable *imports_ = nullptr;
	std::map<std::string, size_t> import_index_;
	std::vector<std::string> import_keys_;
	std::vector<GlobalVariable *> used_;

	uint32_t pc_ = 0, cur_start_ = 0, cur_end_ = 0;
	Function *cur_fn_ = nullptr;
	std::map<uint32_t, BasicBlock *> blocks_;
	Value *regs_[11] = {};
	AllocaInst *stack_ = nullptr;
	Value *run_ = nullptr;
	Value *fp_slot_ = nullptr, *fp_ = nullptr; // bounds-check mode
};

void init_llvm()
{
	static std::once_flag once;
	std::call_once(once, [] {
		InitializeNativeTarget();
		InitializeNativeTargetAsmPrinter();
	});
}

OptimizationLevel opt_level(uint32_t o)
{
	switch (o) {
	case 0: return OptimizationLevel::O0;
	case 1: return OptimizationLevel::O1;
	case 2: return OptimizationLevel::O2;
	default: return OptimizationLevel::O3;
	}
}

void optimise(Module &m, TargetMachine *tm, uint32_t level)
{
	LoopAnalysisManager lam;
	FunctionAnalysisManager fam;
	CGSCCAnalysisManager cgam;
	ModuleAnalysisManager mam;
	PassBuilder pb(tm);
	pb.registerModuleAnalyses(mam);
	pb.registerCGSCCAnalyses(cgam);
	pb.registerFunctionAnalyses(fam);
	pb.registerLoopAnalyses(lam);
	pb.crossRegisterProxies(lam, fam, cgam, mam);
	ModulePassManager mpm = level == 0 ?
		pb.buildO0DefaultPipeline(OptimizationLevel::O0) :
		pb.buildPerModuleDefaultPipeline(opt_level(level));
	mpm.run(m, mam);
}

// Builds and checks the module of one request.
std::unique_ptr<Module> build_module(const bpftime_llvm_request &req, LLVMContext &ctx,
				     const DataLayout &dl, const std::string &triple)
{
	auto m = std::make_unique<Module>("bpftime", ctx);
	m->setDataLayout(dl);
	m->setTargetTriple(triple);
	translator(req, ctx, *m).run();
	std::string msg;
	raw_string_ostream os(msg);
	if (verifyModule(*m, &os))
		throw translate_error("LLVM IR does not verify: " + os.str());
	return m;
}

int report(char *err, size_t errlen, int code, const std::string &msg)
{
	if (err && errlen)
		std::snprintf(err, errlen, "%s", msg.c_str());
	return -code;
}

std::string to_string(Error e)
{
	std::string s;
	raw_string_ostream os(s);
	os << e;
	return os.str();
}

bool request_ok(const bpftime_llvm_request *req, char *err, size_t errlen)
{
	if (!req || req->size < sizeof(bpftime_llvm_request)) {
		report(err, errlen, EINVAL, "llvm: request from a newer or older core");
		return false;
	}
	if (!req->insns || req->insn_count == 0 || req->function_count == 0 ||
	    !req->function_starts || req->function_starts[0] != 0) {
		report(err, errlen, EINVAL, "llvm: empty program");
		return false;
	}
	return true;
}

// The executable ranges JITLink allocated for a program, so that the core
// can tell a fault in generated code (vm::in_generated_code).
class code_range_plugin : public orc::ObjectLinkingLayer::Plugin {
    public:
	uint64_t lo = UINT64_MAX, hi = 0;

	void modifyPassConfig(orc::MaterializationResponsibility &, jitlink::LinkGraph &,
			      jitlink::PassConfiguration &config) override
	{
		config.PostAllocationPasses.push_back([this](jitlink::LinkGraph &g) {
			for (jitlink::Section &s : g.sections()) {
				if ((s.getMemProt() & orc::MemProt::Exec) == orc::MemProt::None)
					continue;
				for (jitlink::Block *b : s.blocks()) {
					lo = std::min<uint64_t>(lo, b->getAddress().getValue());
					hi = std::max<uint64_t>(hi, b->getAddress().getValue() +
									b->getSize());
				}
			}
			return Error::success();
		});
	}
	Error notifyFailed(orc::MaterializationResponsibility &) override
	{
		return Error::success();
	}
	Error notifyRemovingResources(orc::JITDylib &, orc::ResourceKey) override
	{
		return Error::success();
	}
	void notifyTransferringResources(orc::JITDylib &, orc::ResourceKey,
					 orc::ResourceKey) override
	{
	}
};

} // namespace

EXPORT uint32_t bpftime_llvm_abi_version(void)
{
	return BPFTIME_LLVM_ABI_VERSION;
}

EXPORT int bpftime_llvm_jit(const bpftime_llvm_request *req, bpftime_llvm_jit_result *out,
			    char *err, size_t errlen)
{
	if (!request_ok(req, err, errlen))
		return -EINVAL;
	if (!out || out->size < sizeof(bpftime_llvm_jit_result) || !out->fn_addrs)
		return report(err, errlen, EINVAL, "llvm: bad result struct");
	try {
		init_llvm();
		auto jtmb = orc::JITTargetMachineBuilder::detectHost();
		if (!jtmb)
			return report(err, errlen, ENOTSUP,
				      "llvm: host target: " + to_string(jtmb.takeError()));
		jtmb->setCodeGenOptLevel(req->opt_level >= 3 ? CodeGenOptLevel::Aggressive :
					 req->opt_level == 0 ? CodeGenOptLevel::None :
							       CodeGenOptLevel::Default);
		auto tm = jtmb->createTargetMachine();
		if (!tm)
			return report(err, errlen, ENOTSUP,
				      "llvm: target machine: " + to_string(tm.takeError()));
		auto ctx = std::make_unique<LLVMContext>();
		std::unique_ptr<Module> m = build_module(*req, *ctx, (*tm)->createDataLayout(),
							 jtmb->getTargetTriple().str());
		optimise(*m, tm->get(), req->opt_level);

		auto ranges = std::make_shared<code_range_plugin *>(nullptr);
		auto jit = orc::LLJITBuilder()
				   .setJITTargetMachineBuilder(std::move(*jtmb))
				   .setObjectLinkingLayerCreator(
					   [ranges](orc::ExecutionSession &es, const Triple &)
						   -> Expected<std::unique_ptr<orc::ObjectLayer>> {
						   auto mm = jitlink::InProcessMemoryManager::Create();
						   if (!mm)
							   return mm.takeError();
						   auto layer = std::make_unique<orc::ObjectLinkingLayer>(
							   es, std::move(*mm));
						   auto p = std::make_unique<code_range_plugin>();
						   *ranges = p.get();
						   layer->addPlugin(std::move(p));
						   return layer;
					   })
				   .create();
		if (!jit)
			return report(err, errlen, ENOTSUP, "llvm: LLJIT: " + to_string(jit.takeError()));
		if (Error e = (*jit)->addIRModule(
			    orc::ThreadSafeModule(std::move(m), std::move(ctx))))
			return report(err, errlen, EINVAL, "llvm: add module: " + to_string(std::move(e)));
		for (uint32_t k = 0; k < req->function_count; k++) {
			auto sym = (*jit)->lookup(BPFTIME_LLVM_FN_PREFIX +
						  std::to_string(req->function_starts[k]));
			if (!sym)
				return report(err, errlen, EINVAL,
					      "llvm: lookup: " + to_string(sym.takeError()));
			out->fn_addrs[k] = sym->getValue();
		}
		out->code_lo = *ranges ? (*ranges)->lo : 0;
		out->code_hi = *ranges ? (*ranges)->hi : 0;
		if (out->code_lo > out->code_hi)
			out->code_lo = out->code_hi = 0;
		out->handle = jit->release();
		return 0;
	} catch (const translate_error &e) {
		return report(err, errlen, EINVAL, std::string("llvm: ") + e.what());
	} catch (const std::exception &e) {
		return report(err, errlen, ENOMEM, std::string("llvm: ") + e.what());
	}
}

EXPORT void bpftime_llvm_release(void *handle)
{
	delete static_cast<orc::LLJIT *>(handle);
}

EXPORT int bpftime_llvm_aot(const bpftime_llvm_request *req, void **obj, size_t *obj_len,
			    char *err, size_t errlen)
{
	if (!request_ok(req, err, errlen))
		return -EINVAL;
	if (!(req->flags & BPFTIME_LLVM_AOT) || !obj || !obj_len)
		return report(err, errlen, EINVAL, "llvm: aot: bad request");
	try {
		init_llvm();
		InitializeAllTargetInfos();
		const std::string triple = "x86_64-unknown-linux-gnu";
		std::string why;
		const Target *target = TargetRegistry::lookupTarget(triple, why);
		if (!target)
			return report(err, errlen, ENOTSUP, "llvm: aot: target " + triple + ": " + why);
		TargetOptions to;
		std::unique_ptr<TargetMachine> tm(target->createTargetMachine(
			triple, req->cpu ? req->cpu : "x86-64", "", to, Reloc::PIC_,
			CodeModel::Small,
			req->opt_level >= 3 ? CodeGenOptLevel::Aggressive : CodeGenOptLevel::Default));
		if (!tm)
			return report(err, errlen, ENOTSUP, "llvm: aot: no target machine for " + triple);
		LLVMContext ctx;
		std::unique_ptr<Module> m = build_module(*req, ctx, tm->createDataLayout(), triple);
		// Everything but the entry points is the object's own.
		for (GlobalVariable &g : m->globals())
			if (!g.isDeclaration() && g.getName() != "llvm.used")
				g.setVisibility(GlobalValue::HiddenVisibility);
		optimise(*m, tm.get(), req->opt_level);
		SmallVector<char, 0> buf;
		raw_svector_ostream os(buf);
		legacy::PassManager pm;
		if (tm->addPassesToEmitFile(pm, os, nullptr, CodeGenFileType::ObjectFile))
			return report(err, errlen, ENOTSUP, "llvm: aot: cannot emit an object");
		pm.run(*m);
		void *mem = std::malloc(buf.size());
		if (!mem)
			return report(err, errlen, ENOMEM, "llvm: aot: out of memory");
		std::memcpy(mem, buf.data(), buf.size());
		*obj = mem;
		*obj_len = buf.size();
		return 0;
	} catch (const translate_error &e) {
		return report(err, errlen, EINVAL, std::string("llvm: ") + e.what());
	} catch (const std::exception &e) {
		return report(err, errlen, ENOMEM, std::string("llvm: ") + e.what());
	}
}
