// The kernel's half of the syscall benchmark: loads syscall.bpf.o into the
// kernel with libbpf, attaches one of its programs (raw tracepoint or
// tracepoint), runs the target with its arguments and passes its output
// through.
//
//   kernel_tp <syscall.bpf.o> <program> <target> [args...]
//
// Where the kernel refuses, prints {"skipped":"<why>"} and exits 0.
#include <bpf/libbpf.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
	if (argc < 4) {
		fprintf(stderr, "usage: %s <syscall.bpf.o> <program> <target> [args...]\n", argv[0]);
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
	if (!prog)
		return 2;
	struct bpf_link *link = bpf_program__attach(prog);
	if (!link)
		return skip("bpf_program__attach", errno);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return skip("fork", errno);
	if (pid == 0) {
		execv(argv[3], argv + 3);
		_exit(127);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
