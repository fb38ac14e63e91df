"""fastconv.distributed: the sampler and loader here; the collectives, DistributedDataParallel,
SyncBatchNorm, the watchdog and the command line in real MPI jobs of 2 ranks (MPICH's mpiexec,
tests/_dist_worker.py), each under a timeout. The exactness tests compare 2 ranks x batch 32
with 1 process x batch 64 on the same samples after 20 steps."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import fastconv
import fastconv.distributed as dist
from fastconv import data, nn, optim, train

from _cuda import requires_cuda
from _util import ROOT, needs_data

HERE = pathlib.Path(__file__).resolve().parent
WORKER = str(HERE / "_dist_worker.py")
JOB_TIMEOUT = 120


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    here = os.path.dirname(sys.executable)
    return shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="mpi: mpi4py and mpiexec are not "
                                                       "installed (pip install \"fastconv[mpi]\")")


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    src = str(pathlib.Path(fastconv.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _job(scenario, nproc=2, launcher_args=(), **env):
    """Runs the worker's scenario on nproc ranks; (exit status, stdout, stderr, seconds)."""
    cmd = [MPIEXEC, *launcher_args, "-n", str(nproc), sys.executable, WORKER, scenario]
    start = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=JOB_TIMEOUT,
                         env=_env(**env), cwd=HERE)
    return run.returncode, run.stdout, run.stderr, time.monotonic() - start


def _result(scenario, **kw):
    code, out, err, _ = _job(scenario, **kw)
    assert code == 0, f"{scenario}: exit {code}\n{out}\n{err}"
    return json.loads(out.strip().splitlines()[-1])


# -- the sampler and the loader (no MPI) --------------------------------------------------------

@pytest.mark.parametrize("n, replicas", [(10, 2), (11, 2), (7, 3), (2, 4), (0, 3)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_shards_cover_the_dataset_once(n, replicas, drop_last):
    shards = [dist.DistributedSampler(n, num_replicas=replicas, rank=r, seed=5,
                                      drop_last=drop_last).indices() for r in range(replicas)]
    sizes = {len(s) for s in shards}
    assert len(sizes) == 1
    per = sizes.pop()
    expect = n // replicas if drop_last else -(-n // replicas)
    assert per == expect == len(dist.DistributedSampler(n, replicas, 0, drop_last=drop_last))
    every = np.concatenate(shards) if shards else np.zeros(0, np.int64)
    if drop_last:
        assert len(np.unique(every)) == len(every) == replicas * (n // replicas)
    else:
        assert set(every.tolist()) == set(range(n))
        # padding repeats the start of the permutation, as torch's
        counts = np.bincount(every, minlength=n) if n else np.zeros(0)
        assert counts.sum() == replicas * per and (counts >= 1).all()


@pytest.mark.parametrize("n, replicas", [(10, 2), (11, 2), (7, 3), (2, 4), (0, 3)])
def test_sampler_real_count_marks_the_padding(n, replicas):
    """The padding comes last in every shard: the first real_count indices of the shards are
    the dataset, each index once."""
    samplers = [dist.DistributedSampler(n, replicas, r, seed=2) for r in range(replicas)]
    real = [s.indices()[:s.real_count] for s in samplers]
    assert sum(s.real_count for s in samplers) == n
    assert sorted(np.concatenate(real).tolist()) == list(range(n))


def test_sampler_interleaves_one_permutation_and_set_epoch_changes_it():
    s0 = dist.DistributedSampler(20, num_replicas=2, rank=0, seed=1)
    s1 = dist.DistributedSampler(20, num_replicas=2, rank=1, seed=1)
    order = np.stack([s0.indices(), s1.indices()], axis=1).ravel()
    assert sorted(order.tolist()) == list(range(20)) and order.tolist() != list(range(20))
    first = s0.indices().tolist()
    s0.set_epoch(1)
    assert s0.indices().tolist() != first
    plain = dist.DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False)
    assert list(plain) == [1, 3, 0]  # 5 padded to 6 with index 0


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 1000, 60000])
def test_randperm_like_torch_is_torchs(n):
    torch = pytest.importorskip("torch")
    from fastconv.distributed._sampler import randperm_like_torch

    for seed in (0, 1, 7, -5, 2**32 + 3, 2**63 + 11, 2**64 - 1, -(2**63)):
        g = torch.Generator()
        g.manual_seed(seed)
        expect = torch.randperm(n, generator=g).numpy()
        got = randperm_like_torch(n, seed)
        assert got.dtype == np.int64 and np.array_equal(got, expect), (n, seed)
    for seed in (2**64, -(2**63) - 1):  # torch's manual_seed overflows there
        with pytest.raises((RuntimeError, ValueError), match="Overflow"):
            torch.Generator().manual_seed(seed)
        with pytest.raises(ValueError, match="seed must be in"):
            randperm_like_torch(n, seed)


def test_sampler_index_lists_are_torchs():
    """Every rank's list for each epoch equals torch.utils.data.DistributedSampler's, shuffled or
    not, padded or dropped, negative seeds included."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler as TorchSampler

    rng = np.random.default_rng(17)
    for _ in range(150):
        n, replicas = int(rng.integers(0, 300)), int(rng.integers(1, 6))
        kw = dict(shuffle=bool(rng.integers(2)), seed=int(rng.integers(-50, 1000)),
                  drop_last=bool(rng.integers(2)))
        for rank in range(replicas):
            ours = dist.DistributedSampler(n, num_replicas=replicas, rank=rank, **kw)
            theirs = TorchSampler(range(n), num_replicas=replicas, rank=rank, **kw)
            for epoch in (0, 3):
                ours.set_epoch(epoch)
                theirs.set_epoch(epoch)
                assert list(ours) == list(theirs) and len(ours) == len(theirs), (n, replicas,
                                                                                rank, kw, epoch)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(num_replicas=2, rank=2), ValueError, "rank"),
    (dict(num_replicas=0, rank=0), ValueError, "num_replicas"),
    (dict(num_replicas=2.0, rank=0), TypeError, "num_replicas"),
    (dict(num_replicas=2, rank=-1), ValueError, "rank"),
    (dict(num_replicas=2, rank=0, seed=None), TypeError, "seed"),
])
def test_sampler_errors(kw, exc, match):
    with pytest.raises(exc, match=match):
        dist.DistributedSampler(10, **kw)


def test_sampler_needs_a_group_for_its_defaults():
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.DistributedSampler(10)
    data_set = list(range(7))
    assert dist.DistributedSampler(data_set, num_replicas=2, rank=0).dataset is data_set


def test_convert_sync_batchnorm_takes_only_the_default_group():
    with pytest.raises(ValueError, match="process_group must be None"):
        dist.convert_sync_batchnorm(nn.BatchNorm2d(3), process_group="group")
    assert isinstance(dist.convert_sync_batchnorm(nn.BatchNorm2d(3), process_group=None),
                      dist.SyncBatchNorm)
    # torch's spelling and signature: nn.SyncBatchNorm, process_group before device and dtype
    assert nn.SyncBatchNorm is dist.SyncBatchNorm
    layer = nn.SyncBatchNorm(3, 1e-3, 0.2, True, True, None, "cpu", np.float64)
    assert (layer.eps, layer.momentum, layer.weight.dtype) == (1e-3, 0.2, np.float64)
    with pytest.raises(ValueError, match="process_group must be None"):
        nn.SyncBatchNorm(3, process_group="group")
    assert isinstance(nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm1d(2)), nn.SyncBatchNorm)


def test_loader_draws_the_samplers_indices():
    images = np.arange(11, dtype=np.float32).reshape(11, 1, 1, 1)
    labels = np.arange(11)
    sampler = dist.DistributedSampler(11, num_replicas=2, rank=1, seed=3)
    loader = data.DataLoader(images, labels, batch_size=4, sampler=sampler)
    assert len(loader) == 2
    got = np.concatenate([y for _, y in loader])
    assert got.tolist() == sampler.indices().tolist()
    with pytest.raises(ValueError, match="shuffle"):
        data.DataLoader(images, labels, sampler=sampler, shuffle=True)


def test_without_a_group():
    assert not dist.is_initialized() and dist.is_main_process()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier,
                 lambda: dist.all_reduce(np.zeros(2)),
                 lambda: dist.DistributedDataParallel(nn.Linear(2, 2))):
        for kind in (RuntimeError, ValueError):  # torch.distributed raises ValueError
            with pytest.raises(kind, match="init_process_group"):
                call()


def test_ddp_arguments_are_checked_first():
    with pytest.raises(TypeError, match="module must be a fastconv Module"):
        dist.DistributedDataParallel("model")
    for cap in (0, -1.0, True, "25"):
        with pytest.raises(ValueError, match="bucket_cap_mb"):
            dist.DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=cap)


def test_convert_sync_batchnorm_keeps_parameters_and_alone_is_batch_norm():
    rng = np.random.default_rng(0)
    fastconv.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3),
                          nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3, affine=False)))
    plain = fastconv.nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3),
                                   nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3, affine=False)))
    plain.load_state_dict(model.state_dict())
    weight = model[1].weight
    assert dist.convert_sync_batchnorm(model) is model
    assert isinstance(model[1], dist.SyncBatchNorm) and isinstance(model[2][1], dist.SyncBatchNorm)
    assert model[1].weight is weight and list(model.state_dict()) == list(plain.state_dict())
    x = rng.standard_normal((4, 2, 7, 6)).astype(np.float32)
    dy = rng.standard_normal((4, 3, 5, 4)).astype(np.float32)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        getattr(plain, mode)()
        assert np.array_equal(model(x), plain(x))
        assert np.array_equal(model.backward(dy), plain.backward(dy))
    for key, value in plain.state_dict().items():
        assert np.array_equal(model.state_dict()[key], value), key


def test_fit_distributed_needs_a_sharded_loader():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    loader = data.DataLoader(np.zeros((4, 1, 2, 2), np.float32), np.zeros(4, np.int64), 2)
    with pytest.raises(ValueError, match="DistributedSampler"):
        train.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), loader, 1,
                  distributed=True, progress=False)


# -- MPI jobs -------------------------------------------------------------------------------

@needs_mpi
def test_two_ranks_match_one_process_on_the_joint_batch():
    """SGD with momentum and Adam, float64 and float32, batch norm in eval mode and
    SyncBatchNorm in training mode, and an uneven last batch (100 samples at 32 per rank)."""
    results = _result("exact")
    assert len(results) == 10
    for key, diff in results.items():
        tol = 1e-10 if key.startswith("float64") else 1e-5
        assert diff is not None and diff <= tol, f"{key}: relative difference {diff}"


@needs_mpi
def test_collectives_on_two_ranks():
    r = _result("collectives")
    assert r["world"] == 2 and r["local_rank"] == 0 and r["backend"] == "mpi"
    assert r["sum"] == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert r["max"] == [1, 0]
    assert r["avg"] == [0.5, 0.5, 0.5]
    assert r["bcast"] == [1.0] * 4
    assert r["ddp_inputs"]


@needs_mpi
def test_sync_batchnorm_with_an_empty_batch_on_one_rank():
    diffs = _result("sync_bn_empty")
    assert max(diffs.values()) <= 1e-12, diffs


@needs_mpi
def test_a_single_process_is_a_group_of_one():
    run = subprocess.run([sys.executable, WORKER, "collectives"], capture_output=True,
                         text=True, timeout=JOB_TIMEOUT, env=_env(), cwd=HERE)
    assert run.returncode == 0, run.stderr
    r = json.loads(run.stdout.strip().splitlines()[-1])
    assert r["world"] == 1 and r["sum"] == [0.0, 1.0, 2.0, 3.0, 4.0] and r["bcast"] == [0.0] * 4


@needs_mpi
def test_sampler_shards_across_ranks():
    r = _result("sampler")
    for key, (a, b) in r.items():
        n, drop_last = int(key.split("-")[0]), key.endswith("True")
        every = a + b
        if drop_last:
            assert len(set(every)) == len(every) == 2 * (n // 2)
        else:
            assert set(every) == set(range(n)) and len(every) == 2 * -(-n // 2)


@needs_mpi
def test_sharded_evaluation_scores_every_sample_once():
    r = _result("evaluate")
    assert r["support"][0] == r["support"][1] and sum(r["support"][0]) == 11
    assert r["accuracy"][0] == r["accuracy"][1]
    assert abs(r["loss"][0] - r["loss"][1]) <= 1e-12 * abs(r["loss"][1])


@needs_mpi
def test_bad_arguments_are_refused_before_any_collective():
    out = _result("errors")
    expect = [("TypeError", "array must be a numpy.ndarray"), ("ValueError", "C-contiguous"),
              ("ValueError", "op must be one of"), ("TypeError", "'avg' needs a float array"),
              ("TypeError", "dtype must be one of"), ("ValueError", "src must be a rank"),
              ("GroupStateError", "already initialised")]
    assert len(out) == len(expect)
    for (kind, message), (got_kind, got) in zip(expect, out):
        assert got_kind == kind and message in got, (kind, message, got_kind, got)


@needs_mpi
@pytest.mark.parametrize("scenario, words", [
    ("raises", ["rank 1 of 2: uncaught ValueError after barrier #1; the other ranks wait in or "
                "before collective #2; aborting the job", "rank 1 broke on purpose"]),
    ("skips", ["disagree at collective #1", "rank 0: all_reduce #1", "rank 1: barrier #1"]),
    ("shapes", ["all_reduce #1 of a float64 array (3,)", "all_reduce #1 of a float64 array (4,)"]),
    ("reduce_ops", ["rank 0: all_reduce #1 of a float64 array (3,) with op 'sum'",
                    "rank 1: all_reduce #1 of a float64 array (3,) with op 'max'"]),
    ("leaves", ["rank 1: finish #1", "rank 0: all_reduce #1"]),
])
def test_a_failing_rank_ends_the_job(scenario, words):
    code, out, err, seconds = _job(scenario, FASTCONV_DIST_TIMEOUT="30")
    assert code != 0, f"{scenario} exited 0\n{out}\n{err}"
    assert seconds < 30, f"{scenario} took {seconds:.1f} s"
    for w in words:
        assert w in err, f"{scenario}: {w!r} not in\n{err}"


@needs_mpi
def test_the_watchdog_ends_a_job_whose_rank_vanished():
    """Rank 1 leaves with status 0 and no exit handler; with the launcher told not to clean up,
    only rank 0's watchdog can end the job."""
    code, out, err, seconds = _job("exits_zero", launcher_args=["-disable-auto-cleanup"],
                                   FASTCONV_DIST_TIMEOUT="2")
    assert code != 0, f"exit 0\n{out}\n{err}"
    assert "all_reduce #1 (agreement) did not complete within 2 s" in err
    assert "rank 0 of 2" in err
    assert seconds < 25


@needs_mpi
def test_the_finished_file_is_written_only_when_every_rank_finished(tmp_path):
    done = tmp_path / "finished"
    code, out, err, _ = _job("collectives", FASTCONV_DIST_DONE_FILE=str(done))
    assert code == 0 and done.read_text().startswith("2 ranks finished"), err
    done.unlink()
    # MPICH's mpiexec stops the others and returns 0 when a rank leaves with status 0: only the
    # missing file tells the launcher (fastconv train --nproc) that the job did not finish.
    code, out, err, _ = _job("exits_zero", FASTCONV_DIST_DONE_FILE=str(done))
    assert not done.exists()


@needs_mpi
@needs_data
def test_train_command_on_two_ranks(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "fastconv", "train", "fashion-mnist", "--limit", "512",
           "--epochs", "1", "--nproc", "2", "--out", str(out), "--data", str(ROOT)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=JOB_TIMEOUT,
                         env=_env(MPLBACKEND="Agg"), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("training fashion_cnn") == 1  # rank 0 speaks for the job
    assert "per rank on 2 ranks" in run.stdout
    assert (out / "model.npz").exists() and (out / "history.json").exists()
    history = json.loads((out / "history.json").read_text())["history"]
    assert len(history) == 1 and 0 < history[0]["train_acc"] <= 1


@needs_mpi
@requires_cuda
def test_nccl_backend_on_the_gpu():
    """One rank per GPU: the NCCL collectives on CuPy arrays and a DistributedDataParallel step
    on the GPU against the same step on the CPU."""
    import cupy

    ranks = min(2, cupy.cuda.runtime.getDeviceCount())
    r = _result("nccl", nproc=ranks)
    assert r["backend"] == "nccl" and r["world"] == ranks
    assert r["sum"] == [float(ranks * i + ranks * (ranks - 1) // 2) for i in range(5)]
    assert r["bcast"] == [float(ranks - 1)] * 4
    assert r["diff"] <= 1e-5, r["diff"]
