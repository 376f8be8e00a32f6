#!/usr/bin/env python3
"""Fuzz the rule language: generated and mutated tables through the decision core (indexed against
scanned), tcpdmatch, tcpdchk and the library (the engine and what it checks: tests/fuzzing.py).

  tools/fuzz.py --seconds 600 [--seed S] [--out build/fuzz]   a long run (`make fuzz`)
  tools/fuzz.py --cases 9000 --seed 13                        a fixed number of cases (the suite's run)
  tools/fuzz.py --seed S --case I [--show]                    one case again, in this process (or its input)
  tools/fuzz.py --replay DIR [DIR ...]                        saved failures again (exit 1 if any still fails)

A run prints its seed, progress every 10 s, each failure with its input as it is found (saved under --out,
a directory per failure: case.json, the files, failure.txt), and at the end tables/s and the failures by
kind. Exit status 0 when nothing failed, 1 otherwise, 2 for usage errors. A case is a hosts.allow and
hosts.deny pair (either may be absent), the files they name and one query; tables/s counts the hosts.allow
and hosts.deny files the cases had.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(CHECKOUT, "tests"))
sys.path.insert(0, CHECKOUT)

import fuzzing  # noqa: E402  (tests/fuzzing.py, found through the path above)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, help="run for this long (default: 60 unless --cases)")
    parser.add_argument("--cases", type=int, help="run this many cases")
    parser.add_argument("--seed", type=int, help="default: a random one (printed)")
    parser.add_argument("--first", type=int, default=0, help="the first case's index (default 0)")
    parser.add_argument("--out", default=os.path.join(CHECKOUT, "build", "fuzz"), help="where failures go")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--case-timeout", type=float, default=10.0, help="seconds per case (a hang)")
    parser.add_argument("--watchdog", type=float, help="seconds without word from a worker: a hang in C code "
                        "(default: twice --case-timeout, and 15)")
    parser.add_argument("--rss-mb", type=int, default=256, help="bound on a worker's peak RSS (MiB)")
    parser.add_argument("--as-mb", type=int, default=2048, help="a worker's address-space limit (MiB)")
    parser.add_argument("--keep", type=int, default=5, help="failures saved per kind and place")
    parser.add_argument("--inject", choices=fuzzing.FAULTS, help="a fault, to see the fuzzer catch it")
    parser.add_argument("--case", type=int, help="run (or --show) one case of --seed in this process")
    parser.add_argument("--show", action="store_true", help="with --case: print the case, do not run it")
    parser.add_argument("--replay", nargs="+", metavar="DIR", help="saved failures (directories, case.json)")
    args = parser.parse_args(argv)

    if args.replay and len(args.replay) > 1:  # each in a process of its own: a case's peak RSS is its own
        still = 0
        for path in args.replay:
            command = [sys.executable, __file__, "--replay", path, "--case-timeout", str(args.case_timeout)]
            if args.inject:
                command += ["--inject", args.inject]
            run = subprocess.run(command, capture_output=True, text=True)
            sys.stdout.write(run.stdout + run.stderr)
            still += run.returncode != 0
        return 1 if still else 0

    if args.replay:
        still = 0
        for path in args.replay:
            try:
                case = fuzzing.load_case(path)
            except ValueError as e:
                print(e)
                still += 1
                continue
            failures = fuzzing.replay(case, args.case_timeout, args.inject)
            still += bool(failures)
            print(f"{path}: {'FAILS' if failures else 'passes'}")
            for failure in failures:
                where = {"seed": case.get("seed"), "index": case.get("index")}
                print(fuzzing.describe({**where, "failure": failure, "case": case}))
        return 1 if still else 0

    if args.case is not None:
        if args.seed is None:
            parser.error("--case needs --seed")
        case = fuzzing.make_case(args.seed, args.case)
        if args.show:
            json.dump(case, sys.stdout, indent=1)
            print()
            return 0
        failures = fuzzing.replay(case, args.case_timeout, args.inject)
        for failure in failures:
            print(fuzzing.describe({"seed": args.seed, "index": args.case, "failure": failure, "case": case}))
        print(f"seed {args.seed}, case {args.case}: {len(failures)} failures")
        return 1 if failures else 0

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    seconds = args.seconds if args.seconds is not None or args.cases is not None else 60.0
    what = f"{args.cases} cases" if args.cases is not None else f"{seconds:g} s"
    print(f"fuzz: seed {seed}, {what}, {args.workers} workers, failures to {args.out}", flush=True)
    report = fuzzing.fuzz(seed, count=args.cases, seconds=seconds, out=args.out, workers=args.workers,
                          case_timeout=args.case_timeout, rss_mb=args.rss_mb, as_mb=args.as_mb,
                          inject=args.inject, first=args.first, keep=args.keep, watchdog=args.watchdog,
                          progress=lambda text: print(f"fuzz: {text}", flush=True),
                          echo=lambda text: print(text, flush=True))
    tables = report.stats.get("tables", 0)
    print(f"fuzz: seed {seed}: {report.cases} cases ({tables} tables) in {report.elapsed:.1f} s: "
          f"{report.rate:.1f} cases/s, {tables / report.elapsed if report.elapsed else 0:.1f} tables/s, "
          f"{len(report.failures)} failures")
    for sig, count in sorted(report.signatures.items(), key=lambda item: -item[1]):
        print(f"  {count:6d}  {sig}")
    if report.stats:
        print("fuzz: what the cases did: " + ", ".join(f"{k} {v}" for k, v in sorted(report.stats.items())))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
