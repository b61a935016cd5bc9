"""Sweeps: readable job directories, and `mia-summarize` over a finished (or partial) multirun.

    mia -m shadow.count=1,2,4,8,16              # job dirs: 0_shadow.count=1, 1_shadow.count=2, ...
    mia-summarize outputs/multirun/<date>/<time>

Job directories are named `<job number>_<swept key>=<value>,...` (the `mia.subdir`
resolver in `hydra.sweep.subdir`): only the swept keys appear — those given with sweep
syntax on the command line (`a=1,2`, `range(...)`) or listed in `hydra.sweeper.params` —
lists are joined with `+`, and anything not filesystem- and shell-safe becomes `_`.

`mia-summarize DIR` finds every job under DIR (a `.hydra/overrides.yaml` next to a
`metrics.json`), takes as swept parameters the overrides whose values differ between
jobs, prints one table row per job, and writes `summary.csv` (one row per job and
attack) and `summary.png` (TPR@5%FPR and AUC against the first swept parameter, one line
per attack, one row of panels per value of the other swept parameters) into DIR.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METRIC_KEYS = ("auc", "tpr@0.05", "tpr@0.01", "tpr@0.001")
MAX_NAME = 120  # characters of a job directory name before it is shortened with a hash
MAX_PANEL_ROWS = 6
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,-]")


# ---------------------------------------------------------------------------------------
# job directory names


def format_value(value: Any) -> str:
    """A Hydra override value as it appears in a directory name (lists joined by `+`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "+".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}-{format_value(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def safe_name(text: str, limit: int = MAX_NAME) -> str:
    """Filesystem- and shell-safe: [A-Za-z0-9._+=,-] only, at most `limit` characters."""
    name = _UNSAFE.sub("_", text.replace("[", "").replace("]", "").replace("'", "").replace('"', ""))
    name = name.lstrip(".") or "_"
    if len(name) > limit:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9]}-{digest}"
    return name


def _parse(lines: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = []
    for line in lines:
        try:
            out.extend(parser.parse_overrides([str(line)]))
        except Exception:  # an override this grammar cannot read (another Hydra version): skip it
            continue
    return out


def _key(override: Any) -> str:
    return str(override.key_or_group).lstrip("+~")


def swept_keys(sweep_dir: Path | None, sweeper_params: Any) -> set[str]:
    """Keys a multirun sweeps: sweep syntax on its command line (from `multirun.yaml`,
    which Hydra's basic sweeper writes into the sweep dir) and `hydra.sweeper.params`."""
    from omegaconf import OmegaConf

    keys: set[str] = set()
    if sweeper_params:
        for key, value in dict(sweeper_params).items():
            parsed = _parse([f"{key}={value}"])
            if not parsed or parsed[0].is_sweep_override():  # a fixed value there sweeps nothing
                keys.add(str(key).lstrip("+~"))
    if sweep_dir is not None and (sweep_dir / "multirun.yaml").is_file():
        try:
            saved = OmegaConf.load(sweep_dir / "multirun.yaml")
            lines = list(OmegaConf.select(saved, "hydra.overrides.task", default=[]) or [])
        except Exception:  # being rewritten by a relaunch of the same sweep
            lines = []
        keys.update(_key(o) for o in _parse(lines) if o.is_sweep_override())
    return keys


def job_dirname(num: Any) -> str:
    """The `mia.subdir` resolver: `<num>_<swept overrides>` of the running Hydra job."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
        sweep_dir = Path(str(hydra_cfg.sweep.dir))
        keys = swept_keys(sweep_dir, hydra_cfg.sweeper.get("params"))
        overrides = _parse(list(hydra_cfg.overrides.task))
    except Exception:  # no Hydra job (e.g. `--cfg hydra --resolve`): just the number
        return str(num)
    last = {_key(o): format_value(o.value()) for o in overrides if _key(o) in keys and not o.is_sweep_override()}
    chosen = sorted(last.items())  # a key given twice: its last value, as Hydra applies it
    if not chosen:
        return str(num)
    name = ",".join(f"{key}={value}" for key, value in chosen)
    leaves = [key.rsplit(".", 1)[-1] for key, _ in chosen]
    if len(safe_name(name, limit=10**6)) > MAX_NAME and len(set(leaves)) == len(leaves):
        name = ",".join(f"{leaf}={value}" for leaf, (_, value) in zip(leaves, chosen))  # long: leaf keys only
    return f"{num}_{safe_name(name)}"


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("mia.subdir"):
        OmegaConf.register_new_resolver("mia.subdir", job_dirname)


# ---------------------------------------------------------------------------------------
# reading a multirun


class SummarizeError(Exception):
    pass


@dataclass
class Job:
    dir: Path
    label: str
    num: int
    overrides: dict[str, Any]  # key -> python value (from .hydra/overrides.yaml)
    config: Any  # the job's .hydra/config.yaml (unresolved)
    metrics: dict[str, Any] | None
    values: dict[str, Any] = field(default_factory=dict)  # swept key -> value


def _job_num(job_dir: Path) -> int:
    from omegaconf import OmegaConf

    hydra_yaml = job_dir / ".hydra" / "hydra.yaml"
    try:
        num = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.job.num", throw_on_resolution_failure=False)
        return int(num)
    except Exception:
        match = re.match(r"(\d+)", job_dir.name)
        return int(match.group(1)) if match else 0


def find_jobs(root: Path) -> list[Job]:
    """Every Hydra job under `root` (including `root` itself), ordered by sweep and job number."""
    import json

    from omegaconf import OmegaConf

    if not root.is_dir():
        raise SummarizeError(f"{root} is not a directory")
    found = [p.parent.parent for p in root.rglob("overrides.yaml") if p.parent.name == ".hydra"]
    jobs = []
    for job_dir in found:
        if ".submitit" in job_dir.parts:
            continue
        hydra_dir = job_dir / ".hydra"
        overrides = {_key(o): o.value() for o in _parse(list(OmegaConf.load(hydra_dir / "overrides.yaml") or []))
                     if not o.is_sweep_override()}
        config = OmegaConf.load(hydra_dir / "config.yaml") if (hydra_dir / "config.yaml").is_file() else None
        metrics_file = job_dir / "metrics.json"
        try:
            metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
        except ValueError:  # not JSON (written by something else): count the job as unfinished
            metrics = None
        label = job_dir.relative_to(root).as_posix() if job_dir != root else job_dir.name
        jobs.append(Job(job_dir, label, _job_num(job_dir), overrides, config, metrics))
    jobs.sort(key=lambda job: (str(job.dir.parent), job.num, job.label))
    return jobs


def _config_value(config: Any, key: str) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if config is None:
        return None
    try:
        value = OmegaConf.select(config, key, throw_on_resolution_failure=False)
    except Exception:
        return None
    if isinstance(value, ListConfig):
        return OmegaConf.to_container(value)
    if isinstance(value, DictConfig):
        return value.get("name")  # a config group: its name, when it has one
    return value


def swept_values(jobs: list[Job]) -> list[str]:
    """Keys whose values differ between jobs; fills each job's `values`; returns keys sorted."""
    keys = sorted({key for job in jobs for key in job.overrides})
    swept = []
    for key in keys:
        values = []
        for job in jobs:
            value = job.overrides[key] if key in job.overrides else _config_value(job.config, key)
            values.append(value)
        if len({format_value(v) for v in values}) > 1:
            swept.append(key)
            for job, value in zip(jobs, values):
                job.values[key] = value
    return swept


def _cell(value: Any) -> Any:
    return format_value(value) if isinstance(value, (list, tuple, dict, bool)) or value is None else value


def csv_rows(jobs: list[Job], swept: list[str]) -> list[dict[str, Any]]:
    """One row per job and attack."""
    rows = []
    for job in jobs:
        if job.metrics is None:
            continue
        for attack, values in job.metrics.get("attacks", {}).items():
            row: dict[str, Any] = {"job": job.label, **{key: _cell(job.values.get(key)) for key in swept},
                                   "attack": attack, "submitted": attack == job.metrics.get("submit")}
            row.update({key: values.get(key) for key in METRIC_KEYS})
            row.update({"eval": job.metrics.get("eval"), "shadows": job.metrics.get("shadows"),
                        "objective": job.metrics.get("optimized_metric"), "run_dir": str(job.dir)})
            rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    from mia_lightning.io.atomic import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------
# table and plot


def print_table(jobs: list[Job], swept: list[str], attacks: list[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption="cells: TPR@5%FPR / AUC; * = the submitted attack")
    table.add_column("job", justify="right")
    for key in swept:
        table.add_column(key, justify="right")
    for attack in attacks:
        table.add_column(attack, justify="right")
    several = len({job.dir.parent for job in jobs}) > 1  # several sweeps under one dir: name the sweep too
    for job in jobs:
        name = f"{Path(job.label).parent.as_posix()}/{job.num}" if several else str(job.num)
        cells = [name, *[str(_cell(job.values.get(key))) for key in swept]]
        if job.metrics is None:
            cells += ["no metrics.json (stage=shadows/logits, or not finished)"] + [""] * (len(attacks) - 1)
        else:
            for attack in attacks:
                row = job.metrics.get("attacks", {}).get(attack)
                star = "*" if attack == job.metrics.get("submit") else ""
                cells.append(f"{row['tpr@0.05']:.3f} / {row['auc']:.3f}{star}" if row else "-")
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: wide enough for one line per job
        console = Console(width=max(120, 30 + 16 * (len(swept) + len(attacks))))
    console.print(table)


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def plot_summary(jobs: list[Job], swept: list[str], attacks: list[str], x_key: str | None, path: Path,
                 title: str) -> Path:
    """TPR@5%FPR and AUC against `x_key`, one line per attack, one row of panels per value
    of the other swept keys (one panel with every point when they are too many)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mia_lightning.report.plots import save_figure

    done = [job for job in jobs if job.metrics is not None]
    if x_key is None:
        x_of = {job.label: job.num for job in done}
        x_name, rest = "job", []
    else:
        x_of = {job.label: job.values.get(x_key) for job in done}
        x_name, rest = x_key, [key for key in swept if key != x_key]
    xs = [x_of[job.label] for job in done]
    numeric = _numeric(xs)
    categories = list(dict.fromkeys(format_value(x) for x in xs))
    groups: dict[str, list[Job]] = {}
    for job in done:
        groups.setdefault(",".join(f"{k}={format_value(job.values.get(k))}" for k in rest), []).append(job)
    note = ""
    if len(groups) > MAX_PANEL_ROWS:
        note = f" ({', '.join(rest)} vary too: all {len(done)} jobs in one panel)"
        groups = {"": done}
    figure = Figure(figsize=(10, 3.4 * len(groups) + 0.6), dpi=110)
    FigureCanvasAgg(figure)
    colors = {attack: f"C{i % 10}" for i, attack in enumerate(attacks)}
    first_row: list[Any] = []
    for row, (group, members) in enumerate(groups.items()):
        for col, (metric, label, chance) in enumerate((("tpr@0.05", "TPR at 5% FPR", 0.05), ("auc", "AUC", 0.5))):
            # one y scale per metric, so the panel rows compare at a glance
            axes = figure.add_subplot(len(groups), 2, 2 * row + col + 1, sharey=first_row[col] if row else None)
            if not row:
                first_row.append(axes)
            for attack in attacks:
                points = []
                for job in members:
                    value = job.metrics.get("attacks", {}).get(attack, {}).get(metric)
                    if value is not None:
                        x = x_of[job.label]
                        points.append((x if numeric else categories.index(format_value(x)), value))
                if not points:
                    continue
                points.sort()
                px, py = zip(*points)
                style = "o" if len(set(px)) < len(px) else "o-"  # repeated x (search, not grid): points only
                axes.plot(px, py, style, color=colors[attack], label=attack, markersize=4, linewidth=1.3)
            axes.axhline(chance, linestyle="--", color="grey", linewidth=0.8)
            if numeric:
                values = sorted({float(x) for x in xs})
                if values[0] > 0 and values[-1] / values[0] >= 8:
                    axes.set_xscale("log")
                if len(values) <= 12:
                    axes.set_xticks(values)
                    axes.set_xticklabels([format_value(x) for x in sorted(set(xs), key=float)])
                    axes.minorticks_off()
            else:
                axes.set_xticks(range(len(categories)))
                axes.set_xticklabels(categories, rotation=30 if max(map(len, categories)) > 8 else 0,
                                     ha="right" if max(map(len, categories)) > 8 else "center", fontsize=7)
            axes.set_xlabel(x_name)
            axes.set_ylabel(label)
            axes.set_title(f"{label}" + (f"  [{group}]" if group else ""), fontsize=9)
            axes.grid(True, alpha=0.3)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=8,
                      bbox_to_anchor=(0.5, 1.0 - 0.02 / max(len(groups), 1)))
    figure.suptitle(title + note, fontsize=10, y=0.0, va="bottom")
    figure.tight_layout(rect=(0, 0.04, 1, 1 - 0.09 / len(groups)))
    return save_figure(figure, path)


# ---------------------------------------------------------------------------------------
# the command


def summarize(root: Path, out: Path | None = None, x_key: str | None = None, attacks: list[str] | None = None,
              plot: bool = True) -> dict[str, Any]:
    """Table, summary.csv and summary.png for the jobs under `root`; returns what it wrote."""
    root = Path(root)
    jobs = find_jobs(root)
    if not jobs:
        raise SummarizeError(f"no runs under {root} (expected job dirs with .hydra/overrides.yaml, "
                             "as `mia -m ...` writes them into outputs/multirun/<date>/<time>/)")
    finished = [job for job in jobs if job.metrics is not None]
    if not finished:
        raise SummarizeError(f"none of the {len(jobs)} runs under {root} has a metrics.json yet "
                             "(stage=shadows/logits jobs write none; rerun the sweep, or `mia stage=attacks`)")
    swept = swept_values(jobs)
    present = list(dict.fromkeys(name for job in finished for name in job.metrics.get("attacks", {})))
    if attacks:
        missing = [a for a in attacks if a not in present]
        if missing:
            raise SummarizeError(f"--attacks {','.join(missing)}: not in these runs (they have {', '.join(present)})")
        present = [a for a in present if a in attacks]
    if x_key is not None and x_key not in swept:
        raise SummarizeError(f"--x {x_key}: not a swept parameter here (swept: {', '.join(swept) or 'none'})")
    x_key = x_key or (swept[0] if swept else None)
    title = f"{root} ({len(finished)} of {len(jobs)} runs with metrics)"
    print_table(jobs, swept, present, title)
    out = Path(out) if out is not None else root
    rows = [row for row in csv_rows(jobs, swept) if row["attack"] in present]
    written = {"csv": write_csv(out / "summary.csv", rows), "swept": swept, "jobs": len(jobs),
               "finished": len(finished)}
    if plot:
        written["png"] = plot_summary(jobs, swept, present, x_key, out / "summary.png", str(root))
    print(f"wrote {written['csv']}" + (f" and {written['png']}" if plot else ""))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mia-summarize",
        description="Summarize a mia multirun: a table, summary.csv (one row per job and attack) and summary.png.")
    parser.add_argument("dir", type=Path, help="a multirun dir (outputs/multirun/<date>/<time>) or any dir above runs")
    parser.add_argument("--x", dest="x_key", default=None, help="swept parameter for the x axis (default: the first)")
    parser.add_argument("--attacks", default=None, help="comma-separated attacks to include (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="where to write summary.csv/png (default: DIR)")
    parser.add_argument("--no-plot", action="store_true", help="skip summary.png")
    args = parser.parse_args(argv)
    try:
        summarize(args.dir, args.out, args.x_key, args.attacks.split(",") if args.attacks else None,
                  plot=not args.no_plot)
    except SummarizeError as error:
        print(f"mia-summarize: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
