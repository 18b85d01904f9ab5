"""Tables and plots of a study's records (bits per byte against tokens and time, cost against N)."""

from __future__ import annotations

import statistics
from pathlib import Path

from ..models import MODEL_NAMES
from ..viz.curves import legend_outside
from ..viz.style import DPI, MODEL_COLORS
from .scoring import headline


# -- tables and plots ---------------------------------------------------------------------------
def arm_labels(records) -> list[str | None]:
    """The legend label of each record, in order (None for records that are not "train").

    The arm name, plus the configuration fields that differ when the same arm of a dataset
    ran under several configurations, e.g. "ecp (num_segments=4)" and "ecp (num_segments=8)";
    the seed does not count as a difference, a field missing from some configs does
    (shown as None). Records that differ only in what the config does not hold (device
    type, compare options) get equal labels.
    """
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(records):
        if r.get("kind") == "train":
            groups.setdefault((r["dataset"], r["arm"]), []).append(i)
    labels: list[str | None] = [None] * len(records)
    for (_, arm), members in groups.items():
        configs = [records[i].get("config", {}) for i in members]
        keys = {k for c in configs for k in c} - {"seed"}
        differ = sorted(k for k in keys if len({repr(c.get(k)) for c in configs}) > 1)
        for i in members:
            c = records[i].get("config", {})
            labels[i] = arm + (" (" + ", ".join(f"{k}={c.get(k)}" for k in differ) + ")" if differ else "")
    return labels


def summary(records, dataset: str | None = None) -> list[dict]:
    """One row per (dataset, config hash, arm): mean and every seed's final figure.

    Returns:
        [{"dataset", "arm", "model", "config_hash", "seeds", "final" (mean), "finals"
        (per seed, seed order), "baselines" (text: bits per byte of the count models on the
        same tokens), "params", "input_tokens", "target_tokens", "train_tokens_per_s"
        (mean), "activation_MiB", "cuda_peak_MiB", "train_wall_s" (mean)}], sorted by dataset
        then best final figure first.
    """
    groups: dict[tuple, list] = {}
    for r, label in zip(records, arm_labels(records)):
        if r.get("kind") == "train" and (dataset is None or r["dataset"] == dataset):
            groups.setdefault((r["dataset"], r.get("config_hash"), r["arm"]), []).append((r, label))
    rows = []
    for (ds, chash, arm), members in groups.items():
        label = members[0][1]
        rs = sorted((r for r, _ in members), key=lambda r: r["seed"])
        finals = [headline(r["final"], r["task"]) for r in rs]
        peak = rs[0]["memory"]["cuda_peak_bytes"]
        rows.append({"dataset": ds, "arm": label, "model": rs[0]["model"], "task": rs[0]["task"],
                     "config_hash": chash, "device": rs[0].get("device_name", "?"), "seeds": [r["seed"] for r in rs],
                     "final": statistics.fmean(finals), "finals": finals, "baselines": rs[0]["final"].get("baselines"),
                     "params": rs[0]["params"], "input_tokens": rs[0]["input_tokens"],
                     "target_tokens": rs[0]["target_tokens"],
                     "train_tokens_per_s": statistics.fmean(r["train_tokens_per_s"] or 0 for r in rs),
                     "activation_MiB": rs[0]["memory"]["activation_bytes"] / 2**20,
                     "cuda_peak_MiB": None if peak is None else peak / 2**20,
                     "train_wall_s": statistics.fmean(r["train_wall_s"] for r in rs)})
    sign = lambda row: row["final"] if row["task"] == "lm" else -row["final"]  # noqa: E731
    return sorted(rows, key=lambda row: (row["dataset"], row["config_hash"] or "", sign(row)))


def markdown_table(rows: list[dict]) -> str:
    """The :func:`summary` rows as a markdown table (figures rounded for reading)."""
    head = ("| arm | seeds | final (mean) | per seed | params | input tokens | target tokens | "
            "train tokens/s | activations MiB | CUDA peak MiB |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        fmt = "{:.4f}" if r["task"] == "lm" else "{:.3f}"
        peak = "-" if r["cuda_peak_MiB"] is None else f"{r['cuda_peak_MiB']:,.0f}"
        lines.append(f"| {r['arm']} | {','.join(map(str, r['seeds']))} | {fmt.format(r['final'])} | "
                     f"{' / '.join(fmt.format(f) for f in r['finals'])} | {r['params']:,} | {r['input_tokens']:,} | "
                     f"{r['target_tokens']:,} | {r['train_tokens_per_s']:,.0f} | {r['activation_MiB']:.1f} | "
                     f"{peak} |")
    return "\n".join(lines)


def cost_table(records) -> str:
    """Markdown table of the cost sweep: tokens/s and memory per model and N."""
    rows = sorted((r for r in records if r.get("kind") == "cost"),
                  key=lambda r: (r["device_name"], MODEL_NAMES.index(r["model"]), r["seq_len"]))
    lines = ["| device | model | N | batch | fwd+bwd s | tokens/s | targets/s | activations MiB | CUDA peak MiB |",
             "|" + "---|" * 9]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['device_name']} | {r['model']} | {r['seq_len']} | {r['batch']} | {r['error']} |||||")
            continue
        peak = "-" if r["cuda_peak_bytes"] is None else f"{r['cuda_peak_bytes'] / 2**20:,.0f}"
        lines.append(f"| {r['device_name']} | {r['model']} | {r['seq_len']} | {r['batch']} | {r['fwd_bwd_s']:.4f} | "
                     f"{r['tokens_per_s']:,.0f} | {r['targets_per_s']:,.0f} | "
                     f"{r['activation_bytes'] / 2**20:,.1f} | {peak} |")
    return "\n".join(lines)


COLORS = MODEL_COLORS  # the course's one colour per model (minecp.viz.style)


def plot_validation(records, x: str = "input_tokens", ax=None, dataset: str | None = None):
    """Validation curves of training records, one line per (arm, seed).

    Args:
        records: records of :class:`ResultStore` (kind "train"; others are ignored).
        x: "input_tokens" (tokens read so far), "target_tokens" (positions trained on so
            far) or "train_wall_s" (seconds of training, evaluation excluded).
        ax: matplotlib Axes to draw on (default a new figure).
        dataset: only this dataset's records (default: the first record's).

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    from ..viz._axes import _new_axes

    recs = [r for r in records if r.get("kind") == "train"]
    if not recs:
        raise ValueError("no training records to plot")
    dataset = dataset or recs[0]["dataset"]
    recs = [r for r in recs if r["dataset"] == dataset]
    created = ax is None
    fig, ax = _new_axes(ax, (5.2, 3.4))
    styles, extra = ["-", "--", ":", "-."], ["#ff7f0e", "#8c564b", "#e377c2", "#bcbd22"]
    labels = arm_labels(recs)  # "ecp (num_segments=4)" when one arm ran under several configs
    variants = list(dict.fromkeys(label for r, label in zip(recs, labels) if label != r["model"]))
    kind = recs[0]["task"]
    for r, label in zip(recs, labels):
        color = COLORS.get(r["model"]) if label == r["model"] else extra[variants.index(label) % len(extra)]
        ax.plot([p[x] for p in r["curve"]], [p["val"] for p in r["curve"]], styles[r["seed"] % len(styles)],
                marker=".", ms=3, color=color, label=f"{label} s{r['seed']}")
    unit = {"input_tokens": "input tokens seen", "target_tokens": "target positions trained on",
            "train_wall_s": "training wall time (s)"}
    ax.set_xlabel(unit.get(x, x))
    ax.set_ylabel({"lm": "validation bits per byte", "copy": "validation copy accuracy",
                   "classify": "validation accuracy"}[kind])
    if kind == "lm":
        finals = [p["val"] for r in recs for p in r["curve"] if p["step"] > 0] or [1.0]
        ax.set_ylim(min(finals) - 0.05, max(finals) + 0.3)  # step 0 (log2 V / bytes) would flatten the rest
    ax.set_title(f"{dataset}: {recs[0].get('device_name', '')}", fontsize=9)
    legend_outside(ax, fontsize=6)
    ax.grid(alpha=0.3)
    return fig if created else ax


def plot_cost(records, metric: str = "tokens_per_s", ax=None, device_name: str | None = None):
    """Cost sweep: ``metric`` against window length N, log-log, one line per model.

    Args:
        metric: "tokens_per_s", "targets_per_s", "activation_bytes" (plotted in MiB) or
            "cuda_peak_bytes" (MiB).
        device_name: only records of this device (default: the first cost record's).

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    from .. import viz

    recs = [r for r in records if r.get("kind") == "cost" and not r["error"] and r.get(metric) is not None]
    if not recs:
        raise ValueError(f"no cost records with {metric!r} to plot")
    device_name = device_name or recs[0]["device_name"]
    recs = [r for r in recs if r["device_name"] == device_name]
    scale = 2**20 if metric.endswith("bytes") else 1
    series, lengths = {}, sorted({r["seq_len"] for r in recs})
    for name in MODEL_NAMES:
        pts = {r["seq_len"]: r[metric] / scale for r in recs if r["model"] == name}
        if pts:
            series[name] = [pts.get(n, float("nan")) for n in lengths]
    label = {"tokens_per_s": "forward+backward input tokens / s", "targets_per_s": "trained positions / s",
             "activation_bytes": "saved activations (MiB)", "cuda_peak_bytes": "CUDA peak memory (MiB)"}
    out = viz.plot_scaling(lengths, series, ax=ax, ylabel=label.get(metric, metric),
                           title=f"{device_name}, {recs[0]['tokens_per_call']:,} tokens per call")
    a = out if ax is not None else out.axes[0]
    a.set_xticks(lengths, [str(n) for n in lengths])
    a.minorticks_off()
    for line in a.get_lines():
        line.set_color(COLORS.get(line.get_label(), line.get_color()))
    legend_outside(a, fontsize=7)
    return out


def plot_study(records, out) -> list[Path]:
    """Write the study's figures into ``out``; returns the written paths.

    Per dataset: ``<dataset>_val_vs_tokens.png``, ``<dataset>_val_vs_time.png``; per
    device of the cost sweep: ``cost_tokens_per_s.png`` and ``cost_memory.png``
    (CUDA peak where measured, else saved activations).
    """
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in dict.fromkeys(r["dataset"] for r in records if r.get("kind") == "train"):
        for x, suffix in (("input_tokens", "tokens"), ("train_wall_s", "time")):
            fig = plot_validation(records, x=x, dataset=ds)
            p = out / f"{ds.replace(':', '_').replace('/', '_')}_val_vs_{suffix}.png"
            fig.savefig(p, dpi=DPI, bbox_inches="tight")
            plt.close(fig)
            paths.append(p)
    costs = [r for r in records if r.get("kind") == "cost" and not r["error"]]
    if costs:
        mem = "cuda_peak_bytes" if any(r["cuda_peak_bytes"] for r in costs) else "activation_bytes"
        for metric, name in (("tokens_per_s", "cost_tokens_per_s.png"), (mem, "cost_memory.png")):
            fig = plot_cost(records, metric)
            fig.savefig(out / name, dpi=DPI, bbox_inches="tight")
            plt.close(fig)
            paths.append(out / name)
    return paths
