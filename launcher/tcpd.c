/*
 * tcpd launcher: the native front of pywrap's tcpd, so that argv[0] survives.
 *
 * inetd runs tcpd with argv[0] set to the daemon's name ("in.fingerd"). The kernel drops argv[0] when it
 * runs a #! script, so tcpd cannot be one. This program only replaces itself (execv, never fork: the pid
 * syslog shows stays the daemon's) with the installed interpreter in isolated mode:
 *
 *   PYTHON -I -S -c "<start pywrap.tcpd>" SELF argv[0] argv[1] ...
 *
 * SELF is this file's own path (/proc/self/exe), so that tcpd can refuse to exec itself. The environment
 * is passed on untouched. Nothing is ever written to fds 0-2: under inetd they are the client's socket.
 * PYTHON and LIBDIR are fixed at build time by `make`.
 */
#include <limits.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

#if !defined(PYTHON) || !defined(LIBDIR)
#error "build with -DPYTHON=\"/usr/bin/python3\" -DLIBDIR=\"/usr/local/lib/pywrap\""
#endif

static const char start[] =
    "import sys; sys.path.insert(0, '" LIBDIR "'); import pywrap.tcpd; pywrap.tcpd.main(sys.argv[1:])";

int main(int argc, char **argv)
{
    static char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char **args = calloc((size_t) argc + 7, sizeof(char *));
    int n = 0;

    self[len > 0 ? len : 0] = 0;
    if (args != NULL) {
        args[n++] = PYTHON;
        args[n++] = "-I";
        args[n++] = "-S";
        args[n++] = "-c";
        args[n++] = (char *) start;
        args[n++] = self;
        for (int i = 0; i < argc; i++)
            args[n++] = argv[i];
        args[n] = NULL;
        execv(PYTHON, args);
    }
    /* Only reached when the interpreter cannot be run: say so where the admin looks, and refuse. */
    openlog("tcpd", LOG_PID, LOG_DAEMON);
    syslog(LOG_ERR, "error: cannot execute %s: %m", PYTHON);
    closelog();
    return 1;
}
