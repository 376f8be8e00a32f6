"""Differential suite: random rule files and queries through Debian's tcpdmatch and ours, compared.

2,400 seeded cases (generator.py) run in a private mount namespace (sandbox.py). For every case the reference
gives, our stdout, exit status and diagnostics must equal its own.
"""

from __future__ import annotations

import json
import os

import pytest
from compare import differences
from generator import generate
from sandbox import run_cases

SEEDS = [101, 202]
CASES_PER_SEED = 1200
SUMMARY = os.environ.get("PYWRAP_DIFF_SUMMARY")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_rules_agree_with_reference(seed):
    cases = generate(seed, CASES_PER_SEED)
    results = run_cases(cases, case_timeout=5)
    agreed, failures = 0, []
    for index, (case, result) in enumerate(zip(cases, results, strict=True)):
        problems = differences(result)
        if problems:
            failures.append(f"seed {seed} case {index}: {case['args']} "
                            f"{json.dumps({k: v for k, v in case['files'].items() if k.startswith('hosts')})}\n"
                            + "\n".join(problems))
        else:
            agreed += 1
    if SUMMARY:
        with open(SUMMARY, "a", encoding="utf-8") as f:
            f.write(json.dumps({"seed": seed, "cases": len(cases), "agreed": agreed,
                                "disagreements": len(failures)}) + "\n")
    assert not failures, "\n\n".join(failures[:5])
    assert agreed == len(cases)
