"""The benchmark suite behind ``fastconv bench``: fastconv's kernels, layers and networks
against NumPy and PyTorch (oneDNN on the CPU, cuDNN on the GPU) and against the machine's
measured ceilings (SGEMM rate, copy bandwidth).

Every output is checked against a float64 NumPy reference before it is timed; a wrong one
from fastconv raises ValidationError instead of producing a number, a peer's wrong one is
recorded ({"wrong": message}) and that peer is not timed on that pass. Benchmarks never assert
on speed.

    result = fastconv.bench.run(device="cpu", suite="quick")
    print(fastconv.bench.format_table(result))
"""

from ._cases import FAMILIES, SUITES, Case, cases
from ._cli import add_arguments, main, run_cli
from ._harness import ValidationError
from ._report import format_table, plot, to_markdown, write_json
from ._runner import PEERS, cuda_unavailable, run

__all__ = ["run", "main", "run_cli", "add_arguments", "cases", "Case", "ValidationError",
           "format_table", "to_markdown", "write_json", "plot", "cuda_unavailable", "FAMILIES",
           "SUITES", "PEERS"]
