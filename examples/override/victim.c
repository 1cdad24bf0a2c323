// The traced program of the override example: asks check_access() about a
// few users and prints each answer.
#include <stdio.h>

// Only root may go on. noinline/noclone keep it a real function with its
// own symbol; the volatile pointer keeps every call.
__attribute__((noinline, noclone)) int check_access(int uid)
{
	return uid == 0;
}

static int (*volatile check)(int) = check_access;

int main(void)
{
	const int uids[] = { 0, 1000, 1001 };
	for (unsigned i = 0; i < sizeof uids / sizeof uids[0]; i++)
		printf("uid %d: %s\n", uids[i], check(uids[i]) ? "allowed" : "denied");
	return 0;
}
