"""The ``fastconv`` command: ``fastconv info``."""

import argparse
import sys


def _print_info():
    from . import info

    d = info()
    width = max(len(k) for k in d)
    for key, value in d.items():
        if value is None or value == "":
            value = "-"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        print(f"{key:<{width}}  {value}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastconv", description="fastconv command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print version, BLAS, threads, OpenMP, SIMD and CUDA facts")
    args = parser.parse_args(argv)
    if args.command == "info":
        _print_info()
    return 0


if __name__ == "__main__":
    sys.exit(main())
