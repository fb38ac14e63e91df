"""Runs a suite: for each case, check every implementation against the float64 reference, then
time each pass of each one; return every figure, with the ceilings and the environment, as one
JSON-ready dict."""

import contextlib
import time
import zlib
from types import SimpleNamespace

import numpy as np

from . import _cases
from ._harness import (TIMINGS, CpuClock, CupyClock, TorchClock, ValidationError, as_tuple,
                       check, cpu_ceilings, cuda_ceilings, cuda_environment, environment,
                       measure, measure_turns)

PEERS = ("numpy", "torch")
DEVICES = ("cpu", "cuda")
TF32_TOL = 5e-2  # TF32 rounds GEMM inputs to 10-bit mantissas; still catches a wrong result
# NumPy's OpenBLAS threads spin for about 0.1 s after each call: after NumPy work (references,
# the NumPy peer) the next timing waits this long, or those threads take its cores
SETTLE_S = 0.2
RATE_UNITS = {"flop": ("GFLOP/s", 1e9), "byte": ("GB/s", 1e9), "image": ("images/s", 1.0)}
CEILING_OF = {"flop": "sgemm_gflops", "byte": "copy_gbs"}


def cuda_unavailable():
    """Why the GPU cases cannot run here, or None when they can."""
    import fastconv

    info = fastconv.info()
    if not info["cuda_built"]:
        return "fastconv was built without CUDA (no nvcc at build time, or FASTCONV_CUDA=OFF)"
    if str(info.get("cuda_device", "")).startswith("none"):
        return f"fastconv sees no CUDA device: {info['cuda_device']}"
    try:
        import cupy
    except ImportError:
        return 'CuPy is not installed (pip install "fastconv[cuda]")'
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CuPy raises its own CUDARuntimeError without a driver
        return f"CuPy finds no CUDA device ({err})"
    return None if count > 0 else "CuPy finds no CUDA device"


@contextlib.contextmanager
def _fp32_math(torch, mode):
    """torch's GPU float32 GEMMs and convolutions in full FP32 ("ieee") or TF32 ("tf32")."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        # torch >= 2.9: the legacy allow_tf32 flags must not be mixed with these
        knobs = [(torch.backends.cuda.matmul, "fp32_precision", mode),
                 (torch.backends.cudnn.conv, "fp32_precision", mode)]
    else:
        knobs = [(torch.backends.cuda.matmul, "allow_tf32", mode == "tf32"),
                 (torch.backends.cudnn, "allow_tf32", mode == "tf32")]
    old = [getattr(obj, name) for obj, name, _ in knobs]
    for obj, name, value in knobs:
        setattr(obj, name, value)
    try:
        yield
    finally:
        for (obj, name, _), value in zip(knobs, old):
            setattr(obj, name, value)


class _Side:
    """One implementation of a case: its callables per pass, clock, tolerance, math mode and
    how many leading outputs are compared (None: all)."""

    def __init__(self, fns, clock, tol, math=contextlib.nullcontext, checked=None):
        self.fns, self.clock, self.tol, self.math, self.checked = fns, clock, tol, math, checked


def _as64(arrays):
    return {k: v.astype(np.float64) if v.dtype == np.float32 else v.copy()
            for k, v in arrays.items()}


def _check_side(case, side, what, p, expected, arrays64):
    """The side's max error on pass p; raises ValidationError when its output is wrong."""
    try:
        with side.math():
            out = side.fns[p]()
    except Exception as err:
        raise ValidationError(f"{what}: raised {type(err).__name__}: {err}; refusing "
                              "to time it") from err
    if expected is None:
        err = case.check_fwd(arrays64, as_tuple(out))
        if not err <= side.tol:
            raise ValidationError(f"{what}: output and mask disagree (error {err:.2e}) "
                                  "or the mask keeps the wrong share; refusing to time it")
        return err
    return check(what, as_tuple(out)[:side.checked], expected[:side.checked], side.tol)


def _validate(case, device, ref, sides, arrays64):
    """Max error per side and pass, and each peer's wrong passes ({side: {pass: message}}).
    fastconv's first wrong output raises ValidationError; a peer's is kept, and that peer is
    not timed on that pass (PyTorch's tanh backward once came back 8.2e-5 off mid-run, and
    the whole run stopped there)."""
    errors = {name: {} for name in sides}
    wrong = {}
    for p in case.passes:
        random_fwd = p == "fwd" and case.check_fwd is not None
        expected = None if random_fwd else as_tuple(ref[p]())
        for name, side in sides.items():
            what = f"{device} {case.family} '{case.name}' {p}, {name}"
            try:
                errors[name][p] = _check_side(case, side, what, p, expected, arrays64)
            except ValidationError as err:
                if name == "fastconv":
                    raise
                wrong.setdefault(name, {})[p] = str(err)
    return errors, wrong


def _rates(stats, case, p, ceilings):
    unit, scale = RATE_UNITS[case.unit]
    rate = case.work[p] / stats["median_s"] / scale
    ceiling = ceilings.get(CEILING_OF.get(case.unit))
    return {"rate": rate, "rate_unit": unit,
            "ceiling_fraction": None if ceiling is None else rate / ceiling}


def _run_case(case, dev, timing, log):
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    arrays = case.inputs(rng)
    arrays64 = _as64(arrays)
    ctx = SimpleNamespace(device=dev.name, torch=dev.torch, torch_device=dev.name)
    ref = case.reference(ctx, arrays64)
    sides = {"fastconv": _Side(case.fastconv(ctx, dev.put(arrays)), dev.clock, case.tol)}
    for key, mode in dev.torch_variants:
        if mode == "tf32" and not case.tf32:
            continue
        math = (lambda m=mode: _fp32_math(dev.torch, m)) if mode else contextlib.nullcontext
        tensors = {k: dev.torch.from_numpy(v.copy()).to(dev.name) for k, v in arrays.items()}
        with math():
            fns = case.torch(ctx, tensors)
        if mode == "tf32":
            sides[key] = _Side(fns, dev.torch_clock, TF32_TOL, math, case.tf32_checks)
        else:
            sides[key] = _Side(fns, dev.torch_clock, case.tol, math)
    if dev.numpy_peer and case.numpy_peer:
        sides["numpy"] = _Side(case.numpy_peer(ctx, {k: v.copy() for k, v in arrays.items()}),
                               CpuClock(), case.tol)
    errors, wrong = _validate(case, dev.name, ref, sides, arrays64)
    for name in wrong:
        for p, message in wrong[name].items():
            log(f"{message} (the peer's {p} is not timed; the run goes on)")
    log(f"{dev.name} {case.family:<5} {case.name} [{case.shape}]: validated "
        f"{', '.join(sides)}" + ("" if dev.validate_only else "; timing"))
    if dev.validate_only:
        return []
    if dev.ceilings is None:
        # measured once per device, before its first timing: a wrong kernel fails fast
        dev.ceilings = dev.measure_ceilings()
    time.sleep(SETTLE_S)
    rows = []
    for p in case.passes:
        row = {"family": case.family, "case": case.name, "shape": case.shape, "pass": p,
               "unit": case.unit, "work": case.work[p], "counts": case.counts,
               "note": case.note, "peers": {}}
        # fastconv and PyTorch in turns; NumPy after them, then a pause for its BLAS threads.
        turns = [n for n in sides if n != "numpy" and p not in wrong.get(n, {})]
        measured = dict(zip(turns, measure_turns(
            [(sides[n].fns[p], sides[n].clock, sides[n].math) for n in turns], timing)))
        if "numpy" in sides and p not in wrong.get("numpy", {}):
            measured["numpy"] = measure(sides["numpy"].fns[p], sides["numpy"].clock, timing)
            time.sleep(SETTLE_S)
        for name in sides:
            if p in wrong.get(name, {}):
                row["peers"][name] = {"wrong": wrong[name][p]}
                continue
            stats = measured[name]
            stats.update(_rates(stats, case, p, dev.ceilings), max_rel_err=errors[name][p])
            if name == "fastconv":
                row["fastconv"] = stats
            else:
                stats["ratio"] = row["fastconv"]["median_s"] / stats["median_s"]
                row["peers"][name] = stats
        rows.append(row)
    return rows


def _device(name, suite, timing, torch, compare, validate_only, log):
    """Clocks, array placement, peers and how to measure the ceilings, for one device."""
    # torch, when importable, also gives the networks' float64 reference, peer or not
    dev = SimpleNamespace(name=name, torch=torch, torch_variants=[], labels={}, environment={},
                          validate_only=validate_only, ceilings=None,
                          numpy_peer=name == "cpu" and "numpy" in compare)
    use_torch = torch is not None and "torch" in compare
    if name == "cpu":
        dev.clock = CpuClock()
        dev.put = lambda arrays: {k: v.copy() for k, v in arrays.items()}
        copy_bytes = (64 if suite == "quick" else 256) << 20
        dev.measure_ceilings = lambda: cpu_ceilings(timing, copy_bytes, suite != "quick")
        if use_torch:
            dev.torch_clock, dev.torch_variants = CpuClock(), [("torch", None)]
            onednn = "oneDNN" if torch.backends.mkldnn.is_available() else "no oneDNN"
            dev.labels["torch"] = f"PyTorch {torch.__version__} CPU ({onednn})"
        if dev.numpy_peer:
            dev.labels["numpy"] = "NumPy (the float32 reference: tap sums, window maxima)"
        return dev
    import cupy

    dev.clock = CupyClock(cupy)
    dev.put = lambda arrays: {k: cupy.asarray(v) for k, v in arrays.items()}
    dev.measure_ceilings = lambda: cuda_ceilings(cupy, timing)
    dev.environment = cuda_environment(cupy, torch)
    if use_torch and not torch.cuda.is_available():
        log("cuda: no cuDNN peer: this torch has no CUDA")
    elif use_torch:
        torch.backends.cudnn.benchmark = True
        dev.torch_clock = TorchClock(torch)
        dev.torch_variants = [("torch_fp32", "ieee"), ("torch_tf32", "tf32")]
        dev.labels["torch_fp32"] = f"PyTorch {torch.__version__} CUDA, cuDNN FP32 (TF32 off)"
        dev.labels["torch_tf32"] = (f"PyTorch {torch.__version__} CUDA, cuDNN TF32 (convolution "
                                    "and GEMM cases only)")
    return dev


def _import_torch(compare, log):
    try:
        import torch
    except ImportError:
        if "torch" in compare:
            log("torch is not installed: no PyTorch peer (pip install torch)")
        return None
    return torch


def run(device="cpu", suite="quick", ops=_cases.FAMILIES, threads=None, compare=PEERS,
        name_filter=None, cases=None, validate_only=False, log=None):
    """Run a suite and return its results as a JSON-ready dict.

    device: "cpu", "cuda" or "all"; suite: "quick", "standard" or "full"; ops: op families
    (see FAMILIES); threads: for fastconv and torch alike (default: fastconv's current count);
    compare: peers among "numpy" and "torch"; name_filter: keep cases whose name contains it;
    cases: an explicit list of Case objects instead of the suite's tables; validate_only: check
    every output, time nothing; log: a callable taking progress lines.
    Raises ValidationError when any output differs from the reference.
    """
    import fastconv

    if device not in DEVICES + ("all",):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'all', got {device!r}")
    if suite not in _cases.SUITES:
        raise ValueError(f"suite must be one of {', '.join(_cases.SUITES)}, got {suite!r}")
    unknown = set(compare) - set(PEERS)
    if unknown:
        raise ValueError(f"compare: unknown peers {sorted(unknown)}; choose from numpy, torch")
    start = time.perf_counter()
    threads = threads or fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    log = log or (lambda line: None)
    torch = _import_torch(compare, log)
    if torch is not None:
        torch.set_num_threads(threads)
    timing = TIMINGS[suite]
    result = {"schema": 1, "suite": suite, "ops": list(ops), "compare": list(compare),
              "timing": {"warmup": timing.warmup, "repeats": timing.repeats,
                         "min_sample_s": timing.min_time},
              "environment": environment(threads, torch), "devices": {}}
    for name in DEVICES if device == "all" else (device,):
        if name == "cuda":
            reason = cuda_unavailable()
            if reason:
                log(f"cuda: GPU cases skipped: {reason}")
                result["devices"]["cuda"] = {"skipped": reason}
                continue
        dev = _device(name, suite, timing, torch, compare, validate_only, log)
        chosen = cases if cases is not None else _cases.cases(name, suite, ops)
        if name_filter:
            chosen = [c for c in chosen if name_filter.lower() in c.name.lower()]
        rows = []
        for case in chosen:
            rows += _run_case(case, dev, timing, log)
        if dev.ceilings is None:
            dev.ceilings = {} if validate_only else dev.measure_ceilings()
        result["devices"][name] = {"ceilings": dev.ceilings, "peers": dev.labels,
                                   "environment": dev.environment, "rows": rows}
        if name == "cuda":
            import cupy
            result["environment"]["cupy"] = cupy.__version__
    result["elapsed_s"] = time.perf_counter() - start
    return result
