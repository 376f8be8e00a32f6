# pywrap — build, install, test.
#
#   make test       install what the tests need (Debian packages, .venv), then run pytest
#   make install    PREFIX=/usr/local REAL_DAEMON_DIR=/usr/sbin HOSTS_ALLOW=/etc/hosts.allow HOSTS_DENY=/etc/hosts.deny
#   make lint       ruff over the package and the tests
#
# Knobs of the original tcp_wrappers Makefile, with its defaults; they are baked into the installed programs.
PREFIX          ?= /usr/local
REAL_DAEMON_DIR ?= /usr/sbin
HOSTS_ALLOW     ?= /etc/hosts.allow
HOSTS_DENY      ?= /etc/hosts.deny
DESTDIR         ?=
# The interpreter the installed programs run. It must be readable by every user (services run as nobody),
# so the default is the system's, not one under /root.
PYTHON          ?= /usr/bin/python3
# Seconds tcpd pauses after a refusal before it exits (the reference's 5).
REFUSE_PAUSE    ?= 5
# Ident wait (the reference's 10 s), the time budget of one host-name check, DNS servers instead of
# resolv.conf's ("ADDR[#PORT] ..."), and the reference's PARANOID build (1: refuse unverifiable names).
RFC931_TIMEOUT  ?= 10
DNS_TIMEOUT     ?= 5
DNS_SERVERS     ?=
PARANOID        ?= 0
# Where tcpd keeps parsed tables between connections ("" for no cache).
CACHE_DIR       ?= /var/cache/pywrap
CC              ?= cc
CFLAGS          ?= -O2 -Wall -Wextra

LIBDIR  := $(PREFIX)/lib/pywrap
SBINDIR := $(PREFIX)/sbin
MANDIR  := $(PREFIX)/share/man
PROGRAMS := tcpdmatch tcpdchk try-from safe_finger
MAN5     := $(notdir $(wildcard man/*.5))
MAN8     := $(notdir $(wildcard man/*.8))

# The development venv is made from the interpreter's real path (never a pyenv shell shim).
VENV        := .venv
VENV_PY     := $(VENV)/bin/python
APT_PACKAGES := tcpd openbsd-inetd dnsmasq socat oidentd python3-venv man-db groff-base time

.PHONY: all test apt-deps venv install lint demo clean launcher bench

all: venv launcher

# The native tcpd launcher, with the interpreter and library paths of this PREFIX compiled in.
LAUNCHER := build/tcpd
launcher: $(LAUNCHER)
$(LAUNCHER): launcher/tcpd.c FORCE
	@mkdir -p build
	@case "$(PYTHON)$(LIBDIR)" in *[\\\'\"]*) echo "PYTHON and PREFIX must not contain quotes or backslashes"; exit 1;; esac
	$(CC) $(CFLAGS) -DPYTHON='"$(PYTHON)"' -DLIBDIR='"$(LIBDIR)"' -o $@ launcher/tcpd.c
FORCE:

apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV_PY): pyproject.toml
	rm -rf $(VENV)
	"$$(readlink -f $(PYTHON))" -m venv $(VENV)
	$(VENV_PY) -m pip install -q --upgrade pip
	$(VENV_PY) -m pip install -q -e '.[test]'
	touch $(VENV_PY)

venv: $(VENV_PY)

test: apt-deps venv
	$(VENV_PY) -m ruff check pywrap tests tools bench
	$(VENV_PY) -m pytest -q

lint: venv
	$(VENV_PY) -m ruff check pywrap tests tools bench

# Per-connection cost, ours beside Debian's tcpd in the same run (bench/tcpd_connect.py).
BENCH := $(CURDIR)/build/bench-prefix
bench: apt-deps venv
	$(MAKE) --no-print-directory install PREFIX=$(BENCH) CACHE_DIR=$(BENCH)/cache > /dev/null
	$(VENV_PY) bench/tcpd_connect.py $(BENCH) 30

# A self-contained library directory (package + its two dependencies), byte-compiled for $(PYTHON),
# and small programs that run $(PYTHON) in isolated mode (-I: no PYTHON* variables, no cwd or user site;
# -S: no site-packages), so they work from any directory with an empty environment.
install: venv $(LAUNCHER)
	rm -rf "$(DESTDIR)$(LIBDIR)"
	mkdir -p "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(SBINDIR)"
	$(VENV_PY) -m pip install -q --no-compile --target "$(DESTDIR)$(LIBDIR)" .
	rm -rf "$(DESTDIR)$(LIBDIR)/bin"
	$(VENV_PY) tools/write_build_settings.py "$(DESTDIR)$(LIBDIR)/pywrap/_build.py" \
	  REAL_DAEMON_DIR="$(REAL_DAEMON_DIR)" HOSTS_ALLOW="$(HOSTS_ALLOW)" HOSTS_DENY="$(HOSTS_DENY)" \
	  REFUSE_PAUSE="$(REFUSE_PAUSE)" RFC931_TIMEOUT="$(RFC931_TIMEOUT)" DNS_TIMEOUT="$(DNS_TIMEOUT)" \
	  DNS_SERVERS="$(DNS_SERVERS)" PARANOID="$(PARANOID)" CACHE_DIR="$(CACHE_DIR)"
	"$(PYTHON)" -m compileall -q "$(DESTDIR)$(LIBDIR)"
	for p in $(PROGRAMS); do \
	  $(VENV_PY) tools/write_program.py "$(DESTDIR)$(SBINDIR)/$$p" "$(PYTHON)" "$(LIBDIR)" $$p; \
	done
	chmod -R u+rwX,go+rX,go-w "$(DESTDIR)$(LIBDIR)"
	install -m 755 $(LAUNCHER) "$(DESTDIR)$(SBINDIR)/tcpd"
	for page in $(MAN5); do install -D -m 644 "man/$$page" "$(DESTDIR)$(MANDIR)/man5/$$page"; done
	for page in $(MAN8); do install -D -m 644 "man/$$page" "$(DESTDIR)$(MANDIR)/man8/$$page"; done

# Install into ./demo-prefix and show tcpd working under a real inetd on loopback (tools/demo.py).
DEMO := $(CURDIR)/demo-prefix
demo: apt-deps venv
	$(MAKE) --no-print-directory install PREFIX=$(DEMO) REAL_DAEMON_DIR=$(DEMO)/libexec \
	  HOSTS_ALLOW=$(DEMO)/etc/hosts.allow HOSTS_DENY=$(DEMO)/etc/hosts.deny CACHE_DIR=$(DEMO)/cache > /dev/null
	unshare -m --propagation private $(VENV_PY) tools/demo.py $(DEMO)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache demo-prefix
