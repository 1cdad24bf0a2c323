// Native reference for clang-diff.sh: runs entry() of the program it is
// linked with on the memory given as hex in argv[1]; prints r0 as the plugin
// does.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned long long entry(unsigned char *mem, unsigned long long len);

int main(int argc, char **argv)
{
	static unsigned char mem[4096];
	unsigned long long len = 0;
	const char *p = argc > 1 ? argv[1] : "";
	char *end;
	while (len < sizeof mem) {
		unsigned long v = strtoul(p, &end, 16);
		if (end == p)
			break;
		mem[len++] = (unsigned char)v;
		p = end;
	}
	printf("0x%llx\n", entry(len ? mem : NULL, len));
	return 0;
}
