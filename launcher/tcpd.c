/*
 * tcpd launcher: the native front of pywrap's tcpd, so that argv[0] survives.
 *
 * inetd runs tcpd with argv[0] set to the daemon's name ("in.fingerd"). The kernel drops argv[0] when it
 * runs a #! script, so tcpd cannot be one. This program only replaces itself (execv, never fork: the pid
 * syslog shows stays the daemon's) with the installed interpreter in isolated mode:
 *
 *   PYTHON -I -S -c "<start pywrap.tcpd>" SELF STDIO IGNORED argv[0] argv[1] ...
 *
 * SELF is this file's own path (/proc/self/exe), so that tcpd can refuse to exec itself. The environment
 * is passed on untouched.
 *
 * Under inetd fds 0-2 are the client's socket, and nothing but the daemon may ever write a byte to them:
 * not the dynamic loader, not an interpreter that cannot start, not a traceback. So the interpreter never
 * has them. Each open one is kept on a descriptor above 2 (one for all of them when they are the same
 * socket, as under inetd), fds 0-2 become /dev/null, and STDIO says where fds 0, 1 and 2 went ("3,3,3";
 * -1 for one that was closed): tcpd puts them back just before it execs the daemon. IGNORED is the set of
 * signals ignored here, in hex (bit n-1 for signal n, as SigIgn in /proc/PID/status): the interpreter
 * ignores SIGPIPE and SIGXFSZ on its own, and tcpd gives what it runs the dispositions found here.
 *
 * When that cannot be done (too few descriptors, no /dev/null, an interpreter that cannot be executed),
 * fds 0-2 are put back as they came, the reason goes to syslog under the name "tcpd", and the launcher
 * pauses REFUSE_PAUSE seconds, as a refusal does, and exits 1. PYTHON and LIBDIR are fixed at build time
 * by `make`, and REFUSE_PAUSE when it is given (else the reference's 5).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#if !defined(PYTHON) || !defined(LIBDIR)
#error "build with -DPYTHON=\"/usr/bin/python3\" -DLIBDIR=\"/usr/local/lib/pywrap\""
#endif
#ifndef REFUSE_PAUSE
#define REFUSE_PAUSE 5
#endif

static const char start[] =
    "import sys; sys.path.insert(0, '" LIBDIR "'); import pywrap.tcpd; pywrap.tcpd.launched(sys.argv[1:])";

static int kept[3] = {-1, -1, -1}; /* where fds 0, 1 and 2 are kept; -1: closed, or not kept yet */
static int nulled;                 /* fds 0-2 are /dev/null */

/* Open, and not close-on-exec: a descriptor the daemon would get. */
static int inherited(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    return flags >= 0 && !(flags & FD_CLOEXEC);
}

/* A socket has one open file description: two descriptors of the same socket inode share it. */
static int same_socket(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && S_ISSOCK(sa.st_mode) && S_ISSOCK(sb.st_mode) &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Fds 0-2 onto descriptors above 2 (not close-on-exec: the interpreter gets them), /dev/null in their
 * place, and one descriptor left free for the interpreter. -1 with errno when that cannot be done. */
static int set_aside(void)
{
    int spare;

    for (int fd = 0; fd < 3; fd++) {
        if (!inherited(fd))
            continue;
        for (int other = 0; other < fd && kept[fd] < 0; other++)
            if (kept[other] >= 0 && same_socket(fd, other))
                kept[fd] = kept[other];
        if (kept[fd] < 0 && (kept[fd] = fcntl(fd, F_DUPFD, 3)) < 0)
            return -1;
    }
    nulled = 1;
    close(0);
    if (open("/dev/null", O_RDWR) != 0 || dup2(0, 1) < 0 || dup2(0, 2) < 0) /* open takes the lowest: 0 */
        return -1;
    if ((spare = fcntl(0, F_DUPFD, 3)) < 0)
        return -1;
    close(spare);
    return 0;
}

/* Fds 0-2 as they came, the copies closed: the client's connection ends only when the process does. */
static void put_back(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (nulled && (kept[fd] < 0 || dup2(kept[fd], fd) < 0))
            close(fd);
    for (int fd = 0; fd < 3; fd++) {
        int shared = 0;
        for (int other = 0; other < fd; other++)
            shared |= kept[other] == kept[fd];
        if (kept[fd] >= 0 && !shared)
            close(kept[fd]);
    }
}

static int refuse(const char *what, int error)
{
    put_back();
    openlog("tcpd", LOG_PID, LOG_DAEMON);
    syslog(LOG_ERR, "error: %s: %s", what, strerror(error));
    closelog();
    sleep(REFUSE_PAUSE);
    return 1;
}

int main(int argc, char **argv)
{
    static char self[PATH_MAX];
    char stdio[3 * 12], ignored[2 * sizeof(unsigned long long) + 1];
    unsigned long long mask = 0;
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char **args = calloc((size_t) argc + 9, sizeof(char *));
    int n = 0;

    if (args == NULL)
        return refuse("cannot execute " PYTHON, errno);
    self[len > 0 ? len : 0] = 0;
    for (int sig = 1; sig <= 64; sig++) {
        struct sigaction action;
        if (sigaction(sig, NULL, &action) == 0 && action.sa_handler == SIG_IGN)
            mask |= 1ULL << (sig - 1);
    }
    if (set_aside() < 0)
        return refuse("cannot set fds 0-2 aside for the interpreter", errno);
    snprintf(stdio, sizeof(stdio), "%d,%d,%d", kept[0], kept[1], kept[2]);
    snprintf(ignored, sizeof(ignored), "%llx", mask);
    args[n++] = PYTHON;
    args[n++] = "-I";
    args[n++] = "-S";
    args[n++] = "-c";
    args[n++] = (char *) start;
    args[n++] = self;
    args[n++] = stdio;
    args[n++] = ignored;
    for (int i = 0; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    execv(PYTHON, args);
    return refuse("cannot execute " PYTHON, errno);
}
