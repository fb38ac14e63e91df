"""The command line of ``fastconv bench``: arguments, progress on stderr, table on stdout and
the JSON, markdown and PNG files."""

import argparse
import shlex
import sys

from ._cases import FAMILIES, SUITES
from ._harness import ValidationError
from ._report import format_table, plot, pyplot, to_markdown, write_json
from ._runner import DEVICES, PEERS, run


def _choices(allowed, what, allow_none=False):
    """An argparse type for a comma-separated subset of `allowed`."""
    def parse(text):
        items = [s.strip() for s in text.split(",") if s.strip()]
        if allow_none and items == ["none"]:
            return ()
        bad = [s for s in items if s not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {bad[0] if bad else text!r}; choose a comma-separated list "
                f"from {', '.join(allowed)}" + (" (or none)" if allow_none else ""))
        return tuple(items)
    return parse


def _positive_int(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def add_arguments(parser):
    parser.add_argument("--device", choices=DEVICES + ("all",), default="cpu",
                        help="where fastconv runs (default: cpu)")
    parser.add_argument("--suite", choices=SUITES, default="standard",
                        help="quick: under a minute on 2 cores, a smoke test; standard: a few "
                             "minutes; full: more cases and larger batches")
    parser.add_argument("--ops", type=_choices(FAMILIES, "op family"), default=FAMILIES,
                        metavar="FAMILIES", help=f"comma-separated: {','.join(FAMILIES)} "
                                                 "(default: all)")
    parser.add_argument("--filter", metavar="TEXT",
                        help="only cases whose name contains TEXT (case-insensitive)")
    parser.add_argument("--threads", type=_positive_int,
                        help="threads for fastconv and torch alike (default: fastconv's)")
    parser.add_argument("--compare", type=_choices(PEERS, "peer", allow_none=True),
                        default=PEERS, metavar="PEERS",
                        help="peers to time beside fastconv: numpy,torch (default), or none")
    parser.add_argument("--check", action="store_true",
                        help="validate every output against the reference, time nothing")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="write the tables as markdown")
    parser.add_argument("--plot", metavar="FILE",
                        help="write a PNG of fastconv/peer time ratios (needs matplotlib)")
    return parser


def run_cli(args, command="fastconv bench"):
    """Run the parsed arguments; returns the exit status (1 when validation fails)."""
    if args.plot and not args.check:
        try:
            pyplot()
        except ImportError as err:
            print(f"fastconv bench: {err}", file=sys.stderr)
            return 2
    try:
        result = run(device=args.device, suite=args.suite, ops=args.ops, threads=args.threads,
                     compare=args.compare, name_filter=args.filter, validate_only=args.check,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    except ValidationError as err:
        print(f"fastconv bench: {err}", file=sys.stderr)
        return 1
    result["command"] = command
    if args.check:
        print(f"every output matched the reference ({result['elapsed_s']:.0f} s)")
        return 0
    print(format_table(result))
    print(f"{result['elapsed_s']:.0f} s in all")
    timed = any(device.get("rows") for device in result["devices"].values())
    for path, write in ((args.json, write_json), (args.markdown, _write_markdown),
                        (args.plot, plot if timed else None)):
        if path and write is None:
            print(f"nothing was timed: no {path}")
        elif path:
            write(result, path)
            print(f"wrote {path}")
    return 0


def _write_markdown(result, path):
    with open(path, "w") as f:
        f.write(to_markdown(result))


def main(argv=None):
    """``fastconv bench`` on its own: parse argv (default sys.argv[1:]) and run."""
    parser = add_arguments(argparse.ArgumentParser(
        prog="fastconv bench", description="Benchmark fastconv against NumPy, PyTorch and "
                                           "the machine's ceilings"))
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_cli(parser.parse_args(argv), "fastconv bench " + shlex.join(argv))
