"""fastconv: hand-written CPU (im2col + BLAS) and CUDA kernels for CNNs, PyTorch-shaped."""

from . import data, distributed, functional, models, nn, optim, train, viz
from ._arrays import from_dlpack
from ._random import manual_seed
from ._runtime import (_version, get_allow_tf32, get_cpu_isa, get_num_threads, info,
                       set_allow_tf32, set_num_threads)
from .serialize import load, save
from .summary import summary

__version__ = _version()

__all__ = ["data", "distributed", "functional", "nn", "optim", "models", "train", "viz", "save", "load",
           "summary", "info", "set_num_threads", "get_num_threads", "set_allow_tf32",
           "get_allow_tf32", "get_cpu_isa", "manual_seed", "from_dlpack",
           "__version__"]
