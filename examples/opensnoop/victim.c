// The opensnoop demo's victim: every 100 ms opens /etc/hostname (which
// exists) and /nonexistent/bpftime (which does not), closing what opened.
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
	printf("victim %d: started\n", (int)getpid());
	fflush(stdout);
	for (;;) {
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd >= 0)
			close(fd);
		fd = open("/nonexistent/bpftime", O_RDONLY);
		if (fd >= 0)
			close(fd);
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}
