"""The README's Python examples run as written (the GPU one where there is a GPU)."""

import pathlib
import re

from _cuda import REASON

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README.md has no python example"
    for code in blocks:
        if "import cupy" in code and REASON is not None:
            continue  # the GPU example runs where a GPU is; test_cuda_nn.py covers the same
        exec(compile(code, str(README), "exec"), {})
