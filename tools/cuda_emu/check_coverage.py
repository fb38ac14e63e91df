"""Checks an emulator coverage trace (FC_EMU_TRACE, written by emu_runtime.cpp) against every
CUDA twin declared in csrc/*.h (an FC_KERNEL line or an entry of a family's op list), in
float32 and float64, and against every launch
site (`<<<`) the build found (launch_sites.txt). A twin counts only if a call of it launched a
kernel; one that was called but returned before any launch (n == 0, nothing requested) is named
as such. Exit status 1, naming each twin/dtype and site missing; the last line is a summary.

Usage: check_coverage.py TRACE SRC_ROOT [LAUNCH_SITES]"""

import re
import sys
from pathlib import Path

DTYPES = ("float32", "float64")


# An op list is a macro `#define FC_<FAMILY>_OPS(X, T)` whose lines (joined by backslashes)
# hold one `X(name, kind, params...)` entry per kernel; see FC_DECLARE in csrc/common.h.
OP_LIST = re.compile(r"^#define\s+FC_\w+_OPS\(X,\s*T\)((?:.*\\\n)*.*)$", re.M)
ENTRY = re.compile(r"\bX\(\s*(\w+)\s*,")
KERNEL = re.compile(r"^\s*FC_KERNEL\(\s*(\w+)\s*,", re.M)
# An elementwise list `#define FC_<FAMILY>_ELEMENTWISE(E, X, T)` holds `E(X, T, op, ...)` per
# op, which the family's op list expands to the twins op_forward and op_backward (csrc/act.h).
ELEMENTWISE_LIST = re.compile(r"^#define\s+FC_\w+_ELEMENTWISE\(E,\s*X,\s*T\)((?:.*\\\n)*.*)$",
                              re.M)
ELEMENTWISE_ENTRY = re.compile(r"\bE\(\s*X\s*,\s*T\s*,\s*(\w+)\s*,")


def declared_twins(src_root):
    names = []
    for header in sorted(Path(src_root, "csrc").glob("*.h")):
        text = header.read_text()
        names += KERNEL.findall(text)
        for body in OP_LIST.findall(text):
            names += ENTRY.findall(body)
        for body in ELEMENTWISE_LIST.findall(text):
            names += [f"{op}_{p}" for op in ELEMENTWISE_ENTRY.findall(body)
                      for p in ("forward", "backward")]
    if not names:
        raise SystemExit(f"no kernel declarations found under {src_root}/csrc")
    return names


def main(argv):
    if len(argv) not in (3, 4):
        raise SystemExit(__doc__)
    trace, src_root = Path(argv[1]), argv[2]
    lines = trace.read_text().splitlines() if trace.exists() else []
    launched, picked, sites_run = set(), set(), set()
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "twin":
            launched.add(tuple(rest.split()))
        elif kind == "picked":
            picked.add(tuple(rest.split()))
        elif kind == "site":
            sites_run.add(rest)

    names = declared_twins(src_root)
    want = [(n, d) for n in names for d in DTYPES]
    problems = []
    for twin in want:
        if twin not in launched:
            why = ("called, but never launched a kernel" if twin in picked
                   else "never called")
            problems.append(f"missing twin {twin[0]}_cuda<{twin[1]}>: {why}")
    unknown = sorted(launched - set(want))
    problems += [f"traced twin {n} {d} is not declared in csrc/*.h" for n, d in unknown]

    summary = f"twins covered {len(want) - sum(t not in launched for t in want)}/{len(want)}"
    if len(argv) == 4:
        sites = dict(line.split(maxsplit=1) for line in
                     Path(argv[3]).read_text().splitlines() if line.strip())
        problems += [f"launch site {s} ({kernel}) never reached" for s, kernel in sites.items()
                     if s not in sites_run]
        summary += f", launch sites {sum(s in sites_run for s in sites)}/{len(sites)}"

    for p in problems:
        print(p)
    print(summary)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
