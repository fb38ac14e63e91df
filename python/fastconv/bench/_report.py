"""The results as a terminal table, markdown, JSON and a PNG of fastconv/peer time ratios."""

import json

from .. import viz

RATIO_NOTE = "ratio = fastconv time / peer time: below 1, fastconv is faster"


def _ms(seconds):
    """Milliseconds to three or four significant digits."""
    ms = seconds * 1e3
    for limit, digits in ((100, 0), (10, 1), (1, 2)):
        if ms >= limit:
            return f"{ms:.{digits}f}"
    return f"{ms:.3f}"


def _rate(stats):
    r, unit = stats["rate"], stats["rate_unit"]
    return f"{r:.0f} {unit}" if unit == "images/s" or r >= 100 else f"{r:.1f} {unit}"


def _peer_names(device):
    names = []
    for row in device["rows"]:
        names += [p for p in row["peers"] if p not in names]
    return names


def _grid(device):
    """Header and rows of cells for one device's table."""
    peers = _peer_names(device)
    head = ["case", "shape", "pass", "fastconv ms (min-max)", "rate", "of ceiling"]
    for p in peers:
        head += [f"{p} ms", f"fastconv/{p}"]
    body = []
    for row in device["rows"]:
        fc = row["fastconv"]
        frac = fc["ceiling_fraction"]
        cells = [row["case"], row["shape"], row["pass"],
                 f"{_ms(fc['median_s'])} ({_ms(fc['min_s'])}-{_ms(fc['max_s'])})", _rate(fc),
                 "-" if frac is None else f"{frac:.0%}"]
        for p in peers:
            peer = row["peers"].get(p)
            if peer is None:
                cells += ["-", "-"]
            elif "wrong" in peer:
                cells += ["wrong output", "-"]
            else:
                cells += [_ms(peer["median_s"]), f"{peer['ratio']:.2f}"]
        body.append(cells)
    return head, body


def _describe(result, name):
    """One paragraph: what was measured, where, against what ceilings."""
    env, device = result["environment"], result["devices"][name]
    if name == "cpu":
        where = (f"{env['cpu_model']} ({env['cpu_simd']}), {env['threads']} threads for "
                 f"fastconv and its peers ({env['cpus_usable']} CPUs usable); BLAS "
                 f"{env['blas']}, {env['compiler']}, fastconv compiled for {env['simd_compiled']}")
        if "cpu_isa" in env:  # results saved before the variants existed do not name one
            where += f", its hot loops running the {env['cpu_isa']} variant"
    else:
        dev_env = device["environment"]
        where = (f"{dev_env['gpu']}, CUDA driver {dev_env['cuda_driver']}, runtime "
                 f"{dev_env['cuda_runtime']}" + (f", cuDNN {dev_env['cudnn']}"
                                                  if dev_env.get("cudnn") else ""))
    c = device["ceilings"]
    lines = [f"{name}: {where}.",
             f"Ceilings measured in this run: SGEMM {c['sgemm_gflops']:.0f} GFLOP/s "
             f"({c['sgemm_how']}); copy {c['copy_gbs']:.1f} GB/s ({c['copy_how']}). "
             "'of ceiling' is the case's GFLOP/s or GB/s as a share of these; memory-bound "
             "cases whose arrays stay in cache can exceed 100%."]
    peers = "; ".join(f"{k}: {v}" for k, v in device["peers"].items())
    if peers:
        lines.append(f"Peers: {peers}. {RATIO_NOTE}.")
    t = result["timing"]
    turns = "fastconv's and its peers' taken in turns" if peers else "fastconv's alone"
    lines.append(f"float32; median (min-max) of {t['repeats']} samples after {t['warmup']} "
                 f"warm-up calls, {turns}; every output checked against a float64 NumPy "
                 "reference before it was timed.")
    return lines


def format_table(result):
    """Plain aligned text, one table per device."""
    out = []
    for name, device in result["devices"].items():
        if "skipped" in device:
            out.append(f"{name}: GPU cases skipped: {device['skipped']}")
            continue
        out += _describe(result, name)
        head, body = _grid(device)
        widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
        for cells in [head] + body:
            out.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
        out.append("")
    return "\n".join(out)


def to_markdown(result):
    """Markdown: the command, the date, and per device its description and table."""
    env = result["environment"]
    out = [f"`{result.get('command', 'fastconv bench')}` on {env['date'][:10]}: fastconv "
           f"{env['fastconv']}, NumPy {env['numpy']}"
           + (f", PyTorch {env['torch']}" if env.get("torch") else "")
           + (f", CuPy {env['cupy']}" if env.get("cupy") else "") + "."]
    for name, device in result["devices"].items():
        out.append("")
        if "skipped" in device:
            out.append(f"{name}: GPU cases skipped: {device['skipped']}.")
            continue
        out.append(" ".join(_describe(result, name)))
        out.append("")
        head, body = _grid(device)
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|")
        out += ["| " + " | ".join(cells) + " |" for cells in body]
        notes = dict.fromkeys(f"- {r['family']}: rate counts {r['counts']}; {r['note']}."
                              for r in device["rows"])
        notes.update(dict.fromkeys(f"- not timed: {peer['wrong']}" for r in device["rows"]
                                   for peer in r["peers"].values() if "wrong" in peer))
        out += [""] + list(notes)
    return "\n".join(out) + "\n"


def write_json(result, path):
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def pyplot():
    """matplotlib's pyplot, or an ImportError that says --plot needs it."""
    return viz.pyplot("--plot")


def plot(result, path):
    """Horizontal bars of fastconv time / peer time per case and pass, on a log axis, one panel
    per device, the 1.0 line marked."""
    plt = pyplot()
    devices = {k: v for k, v in result["devices"].items() if v.get("rows")}
    if not devices:
        raise ValueError("nothing to plot: no device produced timings")
    height = max(len(d["rows"]) for d in devices.values()) * 0.3 + 1.5
    fig, axes = plt.subplots(1, len(devices), figsize=(9 * len(devices), height), squeeze=False)
    for ax, (name, device) in zip(axes[0], devices.items()):
        rows, peers = device["rows"], _peer_names(device)
        labels = [f"{r['case']} {r['pass']}" for r in rows]
        bar = 0.8 / max(len(peers), 1)
        for j, peer in enumerate(peers):
            timed = [peer in r["peers"] and "ratio" in r["peers"][peer] for r in rows]
            ys = [i + (j - (len(peers) - 1) / 2) * bar for i, r in enumerate(rows) if timed[i]]
            ratios = [r["peers"][peer]["ratio"] for i, r in enumerate(rows) if timed[i]]
            ax.barh(ys, ratios, height=bar, label=device["peers"].get(peer, peer))
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel("fastconv time / peer time (log scale; below 1: fastconv faster)")
        ax.set_title(f"fastconv bench --suite {result['suite']}: {name}", pad=22)
        ax.grid(axis="x", which="both", alpha=0.3)
        if peers:  # above the bars, under the title, so it never hides one
            ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1), ncol=len(peers),
                      frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
