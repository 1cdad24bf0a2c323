// The kernel's half of the agent benchmark: loads bench.bpf.o into the
// kernel with libbpf, attaches one of its programs to bench_fn of the
// target as a kernel uprobe (or uretprobe), runs the target with its
// arguments and passes its output through. The same object and programs as
// the agent's variants, so the two columns measure the same work.
//
//   kernel_probe <bench.bpf.o> <program> <uprobe|uretprobe> <target> [args...]
//
// Where the kernel refuses (no bpf() here, no uprobe support), prints
// {"skipped":"<why>"} and exits 0: a reason to skip the row, not a failure.
#include <bpf/libbpf.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// bench_fn (bench_target.c) starts with endbr64, 4 bytes.
#define ENDBR64_SIZE 4

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

static int skip(const char *what, int err)
{
	printf("{\"skipped\":\"%s: %s\"}\n", what, strerror(err < 0 ? -err : err));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s <bench.bpf.o> <program> <uprobe|uretprobe> <target> [args...]\n", argv[0]);
		return 2;
	}
	libbpf_set_print(quiet);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		return skip("bpf_object__open_file", errno);
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj)
		bpf_program__set_autoload(prog, strcmp(bpf_program__name(prog), argv[2]) == 0);
	int err = bpf_object__load(obj);
	if (err)
		return skip("bpf_object__load", err);
	prog = bpf_object__find_program_by_name(obj, argv[2]);
	if (!prog) {
		fprintf(stderr, "kernel_probe: no program %s in %s\n", argv[2], argv[1]);
		return 2;
	}
	// At bench_fn+4, the push %rbp after the endbr64: the kernel single-steps
	// an uprobe on endbr64 (about 20x slower) but emulates push %rbp, its
	// ordinary path, which is the baseline to measure against. The return
	// address is still on top of the stack there, so a uretprobe works too.
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = "bench_fn", .retprobe = strcmp(argv[3], "uretprobe") == 0);
	struct bpf_link *link = bpf_program__attach_uprobe_opts(prog, -1, argv[4], ENDBR64_SIZE, &opts);
	if (!link)
		return skip("bpf_program__attach_uprobe_opts", errno);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return skip("fork", errno);
	if (pid == 0) {
		execv(argv[4], argv + 4);
		_exit(127);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
