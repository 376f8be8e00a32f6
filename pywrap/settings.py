"""Build-time settings, with the original tcp_wrappers defaults.

`make install` writes pywrap/_build.py into the installed copy; its values override the defaults here.
Nothing in this module does I/O beyond that one optional import.
"""

REAL_DAEMON_DIR = "/usr/sbin"
HOSTS_ALLOW = "/etc/hosts.allow"
HOSTS_DENY = "/etc/hosts.deny"
INETD_CONF = "/etc/inetd.conf"
HOSTS_FILE = "/etc/hosts"

RFC931_TIMEOUT = 10          # seconds, default of the `rfc931` option and of user@host patterns
DNS_TIMEOUT = 5              # seconds for one whole name check (reverse and forward lookups together);
                             # a name server that never answers costs at most this
DNS_SERVERS = ""             # "ADDR[#PORT] ..." instead of resolv.conf's name servers ("": resolv.conf)
PARANOID = False             # the reference's PARANOID build: refuse clients whose name does not verify,
                             # before the tables are read (off, as in Debian's build)
STRING_LENGTH = 128          # the reference keeps host, user and daemon strings in 128-byte buffers
TABLE_LINE_BUFFER = 2048     # a logical rule line is assembled in this many bytes (2046 + newline + NUL)
MAX_FILE_LIST_DEPTH = 32     # nesting of /file lists; the reference recurses until it crashes
CACHE_DIR = ""                # where tcpd keeps parsed tables ("" = no cache); make install sets
                             # /var/cache/pywrap
PARSE_LOCK_MIN_SIZE = 1 << 20  # bytes: when a table this big changed, one tcpd parses it and the others wait
PARSE_WAIT = 30              # seconds they wait at most for that parse before parsing themselves
TABLE_MAX_BYTES = 64 << 20   # the most a table or /file list may hold; a bigger one is refused, fail
                             # closed (a million-line fail2ban deny list is about 20 MB)
LOG_BUDGET = 2.0             # seconds all of a process's syslog lines may wait for /dev/log, together; then a
                             # line the log socket cannot take at once is dropped (and counted)
REFUSE_PAUSE = 5             # seconds tcpd waits before exiting after a refusal (keeps inetd from respawning
                             # at full speed for a hostile client), as the reference does
WATCHDOG = None              # seconds one tcpd process may take to decide, whatever it waits for; then it
                             # denies, logs and exits (0: none; None: DNS_TIMEOUT + RFC931_TIMEOUT + 5)

try:  # values baked in by `make install`
    from pywrap._build import *  # noqa: F403
except ImportError:
    pass

if WATCHDOG is None:  # after the baked-in values: it follows the timeouts it must leave room for
    WATCHDOG = DNS_TIMEOUT + RFC931_TIMEOUT + 5
