/*
 * stamp: the daemon the benchmark runs behind both tcpds. Its first act is to write CLOCK_MONOTONIC (the
 * clock Python's time.monotonic() reads) to the client, so the client can tell when tcpd's exec of the
 * daemon happened: connect -> stamp is tcpd's fork-to-exec time (plus inetd's accept and fork).
 */
#include <stdio.h>
#include <time.h>

int main(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    printf("%lld.%09ld\n", (long long) now.tv_sec, now.tv_nsec);
    return 0;
}
