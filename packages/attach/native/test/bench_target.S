/* bench_target.S: the function the attach benchmark calls, written in
 * assembly so that its bytes do not depend on the compiler: the prologue of
 * an unoptimised C function (endbr64; push rbp; mov rbp, rsp), which an
 * inline jump can displace, and nothing else. */
	.text
	.globl	bench_empty
	.type	bench_empty, @function
	.p2align 4
bench_empty:
	endbr64
	push	%rbp
	mov	%rsp, %rbp
	pop	%rbp
	ret
	.size	bench_empty, .-bench_empty
	.section .note.GNU-stack,"",@progbits
