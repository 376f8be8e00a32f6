# pywrap — build, install, test.  `make help` lists the targets and the settings with their defaults.
#
# Nothing here writes outside this checkout and $(DESTDIR)$(PREFIX), except the Debian packages it installs
# with apt-get, and only those that start no service and remove, replace or upgrade nothing
# (tools/debian_parts.py; programs that would start a service are unpacked into build/debian instead).

# Settings, baked into the installed programs; the first four are the original tcp_wrappers Makefile's knobs.
## where to install: sbin/, lib/pywrap/, share/man/
PREFIX          ?= /usr/local
## where tcpd finds the real daemons it runs
REAL_DAEMON_DIR ?= /usr/sbin
## the access control tables
HOSTS_ALLOW     ?= /etc/hosts.allow
HOSTS_DENY      ?= /etc/hosts.deny
## staging root for packagers: files go to $(DESTDIR)$(PREFIX), paths baked in stay $(PREFIX)
DESTDIR         ?=
## the interpreter the installed programs run; readable by every user, since services run as nobody
PYTHON          ?= /usr/bin/python3
## seconds tcpd pauses after a refusal before it exits (the reference's 5)
REFUSE_PAUSE    ?= 5
## seconds to wait for an ident (RFC 931) reply (the reference's 10)
RFC931_TIMEOUT  ?= 10
## seconds one host-name check may take, reverse and forward lookups together
DNS_TIMEOUT     ?= 5
## name servers to ask instead of resolv.conf's: "ADDR[#PORT] ..."
DNS_SERVERS     ?=
## 1: the reference's PARANOID build (refuse clients whose name does not verify)
PARANOID        ?= 0
## where tcpd keeps parsed tables between connections ("" for no cache)
CACHE_DIR       ?= /var/cache/pywrap
## seconds tcpd may take per connection, then it denies (empty: DNS_TIMEOUT + RFC931_TIMEOUT + 5; 0: none)
WATCHDOG        ?=
## the C compiler and its flags, for the launcher
CC              ?= cc
CFLAGS          ?= -O2

# Warnings are errors and the hardening is always on, whatever CFLAGS says.
HARDEN  := -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE -pie -Wl,-z,relro,-z,now
LIBDIR  := $(PREFIX)/lib/pywrap
SBINDIR := $(PREFIX)/sbin
MANDIR  := $(PREFIX)/share/man
PROGRAMS := tcpdmatch tcpdchk try-from safe_finger
MAN5     := $(notdir $(wildcard man/*.5))
MAN8     := $(notdir $(wildcard man/*.8))

# Two virtual environments, both made from the interpreter's real path (never a pyenv shell shim), each
# finished by a stamp file of its own (never a touch of the interpreter, which is the system's):
# build/pip holds only pip, to put the programs' two dependencies into LIBDIR; .venv is the development one
# (pytest, hypothesis, ruff) that only test, lint, bench and demo need.
PIP_VENV    := build/pip
PIP_STAMP   := $(PIP_VENV)/.ready
VENV        := .venv
VENV_PY     := $(VENV)/bin/python
VENV_STAMP  := $(VENV)/.ready
DEBIAN_PARTS = "$(PYTHON)" tools/debian_parts.py build
# pip's cache stays in the checkout too, not in $HOME.
export PIP_CACHE_DIR := $(CURDIR)/build/pip-cache

.PHONY: all help test lint bench fuzz demo install uninstall launcher venv clean FORCE

all: launcher ## build the native tcpd launcher

help: ## this list
	@echo "targets:"
	@grep -E '^[a-z]+:.*## ' $(firstword $(MAKEFILE_LIST)) | sed -E 's/^([a-z]+):.*## (.*)/  make \1\t\2/' | expand -t 20
	@echo "settings (make install NAME=value; defaults shown):"
	@awk '/^## /{note=substr($$0,4)} /^[A-Z0-9_]+ +\?=/{v=$$0; sub(/^[A-Z0-9_]+ +\?= */,"",v); \
	  printf "  %-16s %-20s %s\n", $$1, (v==""?"(empty)":v), note}' $(firstword $(MAKEFILE_LIST))

# The native tcpd launcher, with the interpreter and library paths of this PREFIX compiled in. install
# compiles its own copy straight into place, so installs into different prefixes never share one.
LAUNCHER := build/tcpd
COMPILE_LAUNCHER = case "$(PYTHON)$(LIBDIR)" in *[\\\'\"]*) \
	  echo "PYTHON and PREFIX must not contain quotes or backslashes"; exit 1;; esac; \
	case "$(REFUSE_PAUSE)" in ''|*[!0-9]*) echo "REFUSE_PAUSE must be a whole number"; exit 1;; esac; \
	$(CC) $(CFLAGS) $(HARDEN) -DPYTHON='"$(PYTHON)"' -DLIBDIR='"$(LIBDIR)"' -DREFUSE_PAUSE=$(REFUSE_PAUSE) -o
launcher: $(LAUNCHER)
$(LAUNCHER): launcher/tcpd.c FORCE
	@mkdir -p build
	$(COMPILE_LAUNCHER) $@ launcher/tcpd.c
FORCE:

$(PIP_STAMP):
	$(DEBIAN_PARTS) install
	rm -rf $(PIP_VENV)
	"$$(readlink -f $(PYTHON))" -m venv $(PIP_VENV)
	touch $@

$(VENV_STAMP): pyproject.toml
	$(DEBIAN_PARTS) test
	rm -rf $(VENV)
	"$$(readlink -f $(PYTHON))" -m venv $(VENV)
	$(VENV_PY) -m pip install -q --upgrade pip
	$(VENV_PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV_STAMP)

test: $(VENV_STAMP) ## install what the tests need (Debian packages, .venv), lint, run the whole suite
	$(DEBIAN_PARTS) test
	$(VENV_PY) -m ruff check pywrap tests tools bench
	$(VENV_PY) -m pytest -q

lint: $(VENV_STAMP) ## ruff over the package, the tests and the tools
	$(VENV_PY) -m ruff check pywrap tests tools bench

# Per-connection cost, ours beside Debian's tcpd in the same run (bench/tcpd_connect.py).
BENCH := $(CURDIR)/build/bench-prefix
bench: $(VENV_STAMP) ## per-connection cost beside Debian's tcpd, measured in one run
	$(DEBIAN_PARTS) test
	$(MAKE) --no-print-directory install PREFIX=$(BENCH) CACHE_DIR=$(BENCH)/cache > /dev/null
	$(VENV_PY) bench/tcpd_connect.py $(BENCH) 30

# Long fuzz runs (tests/fuzzing.py; make test runs a bounded one): cases/s, tables/s, and every failure with
# its input saved in build/fuzz.  make fuzz SECONDS=3600 SEED=42
fuzz: $(VENV_STAMP) ## long fuzz run, every failure's input saved in build/fuzz (SECONDS=600, SEED=random)
	$(VENV_PY) tools/fuzz.py --seconds $(or $(SECONDS),600) $(if $(SEED),--seed $(SEED)) --out build/fuzz

# A self-contained library directory (package + its two dependencies), byte-compiled for $(PYTHON),
# and small programs that run $(PYTHON) in isolated mode (-I: no PYTHON* variables, no cwd or user site;
# -S: no site-packages), so they work from any directory with an empty environment.
install: $(PIP_STAMP) ## install into $(DESTDIR)$(PREFIX) (needs only python3-venv and a C compiler)
	rm -rf "$(DESTDIR)$(LIBDIR)"
	mkdir -p "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(SBINDIR)"
	$(PIP_VENV)/bin/pip install -q --disable-pip-version-check --no-compile --target "$(DESTDIR)$(LIBDIR)" .
	rm -rf "$(DESTDIR)$(LIBDIR)/bin" build/lib
	"$(PYTHON)" tools/write_build_settings.py "$(DESTDIR)$(LIBDIR)/pywrap/_build.py" \
	  REAL_DAEMON_DIR="$(REAL_DAEMON_DIR)" HOSTS_ALLOW="$(HOSTS_ALLOW)" HOSTS_DENY="$(HOSTS_DENY)" \
	  REFUSE_PAUSE="$(REFUSE_PAUSE)" RFC931_TIMEOUT="$(RFC931_TIMEOUT)" DNS_TIMEOUT="$(DNS_TIMEOUT)" \
	  DNS_SERVERS="$(DNS_SERVERS)" PARANOID="$(PARANOID)" CACHE_DIR="$(CACHE_DIR)" WATCHDOG="$(WATCHDOG)"
	"$(PYTHON)" -m compileall -q "$(DESTDIR)$(LIBDIR)"
	for p in $(PROGRAMS); do \
	  "$(PYTHON)" tools/write_program.py "$(DESTDIR)$(SBINDIR)/$$p" "$(PYTHON)" "$(LIBDIR)" $$p; \
	done
	chmod -R u+rwX,go+rX,go-w "$(DESTDIR)$(LIBDIR)"
	$(COMPILE_LAUNCHER) "$(DESTDIR)$(SBINDIR)/tcpd.new" launcher/tcpd.c
	chmod 755 "$(DESTDIR)$(SBINDIR)/tcpd.new" && mv -f "$(DESTDIR)$(SBINDIR)/tcpd.new" "$(DESTDIR)$(SBINDIR)/tcpd"
	for page in $(MAN5); do install -D -m 644 "man/$$page" "$(DESTDIR)$(MANDIR)/man5/$$page"; done
	for page in $(MAN8); do install -D -m 644 "man/$$page" "$(DESTDIR)$(MANDIR)/man8/$$page"; done
	if [ -n "$(CACHE_DIR)" ]; then \
	  install -d -m 755 "$(DESTDIR)$(CACHE_DIR)" && install -d -m 1733 "$(DESTDIR)$(CACHE_DIR)/users"; \
	fi

# Exactly what install wrote: the library directory, the programs, the manual pages, the cache directories
# with the caches tcpd wrote there (only its own files: CACHE_DIR itself goes only when that leaves it
# empty). Directories that may have existed before (sbin, share/man/man8, ...) stay.
uninstall: ## remove what make install wrote (same settings), and tcpd's table caches
	rm -rf "$(DESTDIR)$(LIBDIR)"
	rm -f "$(DESTDIR)$(SBINDIR)/tcpd" $(foreach p,$(PROGRAMS),"$(DESTDIR)$(SBINDIR)/$(p)")
	rm -f $(foreach p,$(MAN5),"$(DESTDIR)$(MANDIR)/man5/$(p)") $(foreach p,$(MAN8),"$(DESTDIR)$(MANDIR)/man8/$(p)")
	if [ -n "$(CACHE_DIR)" ] && [ -d "$(DESTDIR)$(CACHE_DIR)" ]; then \
	  rm -rf "$(DESTDIR)$(CACHE_DIR)/users"; \
	  rm -f "$(DESTDIR)$(CACHE_DIR)"/%2F*.tables "$(DESTDIR)$(CACHE_DIR)"/%2F*.tables.lock; \
	  rmdir "$(DESTDIR)$(CACHE_DIR)" 2>/dev/null || true; \
	fi

# Install into ./demo-prefix and show tcpd working under a real inetd on loopback (tools/demo.py); it exits
# non-zero when the granted client was not granted or the refused one not refused.
DEMO := $(CURDIR)/demo-prefix
demo: ## install into ./demo-prefix and show tcpd granting and refusing under a real inetd
	$(DEBIAN_PARTS) demo
	$(MAKE) --no-print-directory install PREFIX=$(DEMO) REAL_DAEMON_DIR=$(DEMO)/libexec \
	  HOSTS_ALLOW=$(DEMO)/etc/hosts.allow HOSTS_DENY=$(DEMO)/etc/hosts.deny CACHE_DIR=$(DEMO)/cache > /dev/null
	"$(PYTHON)" tools/demo.py $(DEMO)

clean: ## remove everything the build, the tests and the demo made in this checkout
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache demo-prefix
