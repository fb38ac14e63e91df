"""Data-parallel training over MPI (mpi4py; CPU) or NCCL (CuPy; GPU), with torch.distributed's
names: launch one process per rank with the environment's MPI launcher (mpiexec, srun, or
`fastconv train ... --nproc N`), call init_process_group() in each, wrap the model in
DistributedDataParallel, shard the data with DistributedSampler, and train as usual.

    mpiexec -n 4 python -m mpi4py train.py

mpi4py is imported on init_process_group(), so a one-process program needs neither it nor an MPI
library (pip install "fastconv[mpi]" brings mpi4py and the mpich wheel). Every collective runs
under a watchdog (FASTCONV_DIST_TIMEOUT seconds, default DEFAULT_TIMEOUT) and is checked to be
the same call on every rank; see _group.py for what happens when a rank fails.
"""

from ._ddp import DistributedDataParallel
from ._group import (DEFAULT_TIMEOUT, DistributedError, ReduceOp, all_gather, all_reduce, barrier,
                     broadcast, destroy_process_group, get_backend, get_local_rank, get_rank,
                     get_world_size, init_process_group, is_initialized, is_main_process)
from ._sampler import DistributedSampler
from ._sync_bn import SyncBatchNorm, convert_sync_batchnorm

__all__ = ["init_process_group", "destroy_process_group", "is_initialized", "get_rank",
           "get_world_size", "get_local_rank", "get_backend", "is_main_process", "barrier",
           "all_reduce", "broadcast", "all_gather", "ReduceOp", "DistributedError",
           "DEFAULT_TIMEOUT", "DistributedDataParallel", "DistributedSampler", "SyncBatchNorm",
           "convert_sync_batchnorm"]
