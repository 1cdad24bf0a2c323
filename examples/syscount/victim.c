// The syscount demo's victim: every 10 ms, 10 getpid() calls, one open,
// read and close of /etc/hostname, and a nanosleep.
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
	printf("victim %d: started\n", (int)getpid());
	fflush(stdout);
	for (;;) {
		for (int i = 0; i < 10; i++)
			getpid();
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd >= 0) {
			char buf[64];
			(void)read(fd, buf, sizeof buf);
			close(fd);
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}
