"""Bring in the Debian parts the tests, the demo and the bench run, without changing what the machine runs.

usage: debian_parts.py BUILD_DIR PURPOSE   (install, demo or test; each takes what the ones before need)

Two kinds of part:
- INSTALL: plain programs and libraries that start no service (Debian's tcpd and tcpdmatch, socat, man, GNU
  time, ...). They are installed with apt-get only after a dry run shows that apt would remove, replace or
  downgrade nothing; otherwise this script stops and says which package was in the way.
- UNPACK: programs that would start a service when installed (openbsd-inetd, oidentd) or conflict with one
  an admin may run (openbsd-inetd and xinetd both provide inet-superserver). They are fetched with
  `apt-get download` and unpacked with `dpkg-deb -x` into BUILD_DIR/debian/root; the libraries they link are
  installed as above. Nothing of theirs is configured, enabled or started, and the tests run them by path
  (tests/debian.py).

It writes nothing outside BUILD_DIR but what apt-get install writes, runs apt-get update at most once, and
does nothing at all when every part is already there.
"""

import os
import re
import subprocess
import sys

# What each purpose needs: `make install` a compiler and venv (for pip); `make demo` an inetd; `make test` and
# `make bench` the reference programs and every real component the tests start.
INSTALL = {"install": ["python3-venv", "gcc", "libc6-dev"],
           "demo": ["util-linux"],
           "test": ["tcpd", "socat", "man-db", "groff-base", "time"]}
UNPACK = {"install": [], "demo": ["openbsd-inetd"], "test": ["dnsmasq-base", "oidentd"]}
PURPOSES = list(INSTALL)
# Dependencies of unpacked packages that are not linked libraries: their scripts or services need them,
# the unpacked programs as the tests run them do not.
NOT_NEEDED = {"adduser", "lsb-base", "update-inetd", "tcpd", "passwd", "netbase", "iproute2", "runit-helper"}

ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
updated = False


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=ENV, check=True, text=True, **kwargs)


def installed(package: str) -> bool:
    state = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return state.returncode == 0 and state.stdout.endswith("install ok installed")


def apt_update() -> None:
    global updated
    if not updated:
        print("debian_parts: apt-get update", flush=True)
        run("apt-get", "update", "-qq")
        updated = True


def harm(packages: list[str], apt_options: tuple[str, ...] = ()) -> list[str]:
    """The lines of apt's dry run for installing `packages` that remove, purge or upgrade something."""
    plan = run("apt-get", "-s", *apt_options, "install", "--no-install-recommends", *packages,
               capture_output=True).stdout
    return [line for line in plan.splitlines()
            if re.match(r"(Remv|Purg) ", line) or (line.startswith("Inst ") and "[" in line.split("(")[0])]


def install(packages: list[str]) -> None:
    missing = [p for p in packages if not installed(p)]
    if not missing:
        return
    apt_update()
    harmful = harm(missing)
    if harmful:
        sys.exit("debian_parts: installing " + " ".join(missing) + " would change what is installed:\n  "
                 + "\n  ".join(harmful) + "\nrefusing; install them by hand if that is what you want")
    print("debian_parts: installing", " ".join(missing), flush=True)
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing)


def dependencies(deb: str) -> list[str]:
    """The package names a .deb's Depends field names (first of each alternative)."""
    field = run("dpkg-deb", "-f", deb, "Depends", capture_output=True).stdout
    names = [re.split(r"[\s(:]", alt.split("|")[0].strip())[0] for alt in field.split(",") if alt.strip()]
    return [n for n in names if n and n not in NOT_NEEDED]


def unpack(build: str, package: str) -> list[str]:
    """Unpack `package` under build/debian/root once; return what it needs installed."""
    debs = os.path.join(build, "debian", "debs")
    root = os.path.join(build, "debian", "root")
    stamp = os.path.join(build, "debian", package + ".unpacked")
    os.makedirs(debs, exist_ok=True)
    if os.path.exists(stamp):
        with open(stamp) as f:
            return dependencies(f.read().strip())
    apt_update()
    print("debian_parts: fetching", package, flush=True)
    run("apt-get", "download", "-q", package, cwd=debs, capture_output=True)
    found = sorted(f for f in os.listdir(debs) if f.startswith(package + "_") and f.endswith(".deb"))
    if not found:
        sys.exit(f"debian_parts: apt-get download {package} left no .deb in {debs}")
    deb = os.path.join(debs, found[-1])
    run("dpkg-deb", "-x", deb, root)
    with open(stamp, "w") as f:
        f.write(deb + "\n")
    return dependencies(deb)


def needed(build: str, purpose: str) -> list[str]:
    """What `purpose` needs installed, after unpacking what it needs unpacked."""
    wanted = PURPOSES[:PURPOSES.index(purpose) + 1]
    packages = [p for w in wanted for p in INSTALL[w]]
    for package in (p for w in wanted for p in UNPACK[w]):
        packages += unpack(build, package)
    return sorted(set(packages))


def main() -> None:
    build, purpose = os.path.abspath(sys.argv[1]), sys.argv[2]
    install(needed(build, purpose))


if __name__ == "__main__":
    main()
