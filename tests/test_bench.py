"""fastconv bench: the machinery runs on a tiny case and writes its reports, and it refuses to
time a wrong kernel. No timing assertions: benchmarks are their own code path."""

import contextlib
import dataclasses
import importlib.util
import json

import numpy as np
import pytest

import fastconv.bench as bench
from fastconv import cli

PNG = b"\x89PNG\r\n\x1a\n"


def relu_case():
    (case,) = [c for c in bench.cases("cpu", "quick", ("act",)) if c.name.startswith("relu")]
    return case


def test_bench_quick_case_writes_json_markdown_and_png(tmp_path, capsys):
    paths = {ext: tmp_path / f"bench.{ext}" for ext in ("json", "md", "png")}
    plot = importlib.util.find_spec("matplotlib") is not None
    argv = ["bench", "--suite", "quick", "--ops", "act", "--filter", "relu",
            "--json", str(paths["json"]), "--markdown", str(paths["md"])]
    assert cli.main(argv + (["--plot", str(paths["png"])] if plot else [])) == 0

    result = json.loads(paths["json"].read_text())
    assert result["command"].startswith("fastconv bench --suite quick --ops act")
    assert {"environment", "devices", "suite", "timing", "elapsed_s"} <= result.keys()
    assert {"cpu_model", "threads", "blas", "compiler", "numpy", "fastconv", "date"} <= \
        result["environment"].keys()
    cpu = result["devices"]["cpu"]
    assert cpu["ceilings"]["sgemm_gflops"] > 0 and cpu["ceilings"]["copy_gbs"] > 0
    assert [(r["case"], r["pass"]) for r in cpu["rows"]] == [("relu (resnet)", "fwd"),
                                                             ("relu (resnet)", "bwd")]
    for row in cpu["rows"]:
        stats = row["fastconv"]
        assert {"median_s", "min_s", "max_s", "q1_s", "q3_s", "samples_s", "rate",
                "ceiling_fraction"} <= stats.keys()
        assert stats["rate_unit"] == "GB/s" and stats["max_rel_err"] <= 1e-5
        assert "ratio" in row["peers"]["numpy"]
    assert ("torch" in cpu["rows"][0]["peers"]) == (importlib.util.find_spec("torch") is not None)

    markdown = paths["md"].read_text()
    assert "| case | shape | pass | fastconv ms (min-max) |" in markdown
    assert "| relu (resnet) |" in markdown and result["command"] in markdown
    assert "relu (resnet)" in capsys.readouterr().out
    if plot:
        assert paths["png"].read_bytes().startswith(PNG)


@pytest.mark.parametrize("wrong", ["values", "nan", "shape", "raises"])
def test_bench_refuses_to_time_a_wrong_kernel(wrong, monkeypatch):
    case = relu_case()

    def fails():
        raise RuntimeError("kernel launch failed")

    def broken(ctx, a):
        x = a["x"]
        out = {"values": lambda: np.full_like(x, 7.0), "shape": lambda: x[:1],
               "nan": lambda: np.where(x > 3, np.nan, np.maximum(x, 0)), "raises": fails}[wrong]
        return {p: out for p in case.passes}

    def no_timing(*args, **kwargs):
        raise AssertionError("a case was timed before it was validated")

    monkeypatch.setattr(bench._runner, "measure", no_timing)
    monkeypatch.setattr(bench._runner, "measure_turns", no_timing)
    with pytest.raises(bench.ValidationError, match="relu .* fwd, fastconv.*refusing to time"):
        bench.run(cases=[dataclasses.replace(case, fastconv=broken)], compare=())


def test_bench_times_fastconv_beside_a_peer_that_returns_a_wrong_output():
    """A peer's wrong output is reported (the table says so, its note says how far off) and
    that peer is not timed on that pass; fastconv's is, and the run goes on."""
    case = relu_case()

    def broken(ctx, a):
        x = a["x"]
        return {p: (lambda: np.full_like(x, 7.0)) for p in case.passes}

    lines = []
    result = bench.run(cases=[dataclasses.replace(case, numpy_peer=broken)], compare=("numpy",),
                       log=lines.append)
    rows = result["devices"]["cpu"]["rows"]
    assert [r["pass"] for r in rows] == list(case.passes)
    for row in rows:
        assert row["fastconv"]["median_s"] > 0
        assert set(row["peers"]["numpy"]) == {"wrong"}
        assert "numpy: differs from the float64 reference" in row["peers"]["numpy"]["wrong"]
    assert any("is not timed; the run goes on" in line for line in lines)
    markdown = bench.to_markdown(result)
    assert "| wrong output | - |" in markdown and "- not timed: cpu act 'relu" in markdown


def test_bench_takes_the_sides_samples_in_turns():
    """After each side's warm-up and inner-loop sizing, one sample of each side per round, each
    inside that side's math context: a machine that slows down mid-measurement weighs on every
    side alike."""
    from fastconv.bench import _harness

    calls = []

    def side(tag):
        @contextlib.contextmanager
        def math():
            calls.append(tag.upper())
            yield
        return (lambda: calls.append(tag)), _harness.CpuClock(), math

    stats = _harness.measure_turns([side("a"), side("b")], _harness.Timing(1, 3, 0.0))
    assert calls == ["A", "a", "a", "B", "b", "b"] + ["A", "a", "B", "b"] * 3
    assert [len(s["samples_s"]) for s in stats] == [3, 3]
    assert all(s["inner_loop"] == 1 and s["min_s"] <= s["median_s"] <= s["max_s"] for s in stats)


@pytest.mark.parametrize("args, named", [
    (["--ops", "conv,nope"], "--ops"), (["--threads", "0"], "--threads"),
    (["--compare", "tensorflow"], "--compare"), (["--suite", "huge"], "--suite"),
    (["--device", "tpu"], "--device")])
def test_bench_bad_arguments_name_the_argument(args, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", *args])
    assert exit_info.value.code == 2
    assert f"argument {named}" in capsys.readouterr().err


def test_bench_gpu_cases_skip_with_the_reason():
    reason = bench.cuda_unavailable()
    if reason is None:
        pytest.skip("GPU present: this machine runs the GPU cases")
    lines = []
    result = bench.run(device="cuda", cases=[], log=lines.append)
    assert result["devices"]["cuda"] == {"skipped": reason}
    assert lines[-1] == f"cuda: GPU cases skipped: {reason}"
