"""Summarise `mia -m experiment=study_recipe_mismatch`: one row per target recipe.

    python scripts/study_recipe_mismatch.py outputs/multirun/study_recipe_mismatch/<date_time> [--out docs/]

For each target recipe (the `+task/train` option) and each shadow mode (given / oracle /
auto): the best uncalibrated attack (every attack that does not learn from pub's labels)
and the best calibrated one (lira_calibrated, rmia_calibrated, stack, ensemble_calibrated), TPR@5%FPR / TPR@1%FPR / AUC
on the hidden truth of priv; for auto, the recipe the search chose and its cost. These are
the study's reported numbers: "best" is the highest TPR@5%FPR on priv's truth, reported
once and never used to choose anything (each run's own submission is chosen on pub).
The ratio to the oracle comes with its 95% paired bootstrap interval where both runs scored
the same priv points on the same resamples (same task files and bootstrap seed: each run's
`bootstrap.pt`), so a ratio below a bar can be told from the noise of 1,000 positives.
Writes `<out>/study_recipe_mismatch.csv`, `.md` (the README table) and `.png`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from mia_lightning.app import CONFIG_DIR
from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_path, atomic_write_text
from mia_lightning.metrics.bootstrap import ratio_interval
from mia_lightning.report.compare import read_bootstrap
from mia_lightning.report.sweep import find_jobs

# "calibrated" = learns from pub's membership labels (the target itself); every other attack
# uses the shadows (or nothing) alone, calibrated_loss's per-point difficulty calibration included
UNCALIBRATED = ("threshold", "loss", "lira_online", "lira_offline", "rmia", "master", "calibrated_loss", "attack_r",
                "base", "ensemble")
CALIBRATED = ("lira_calibrated", "rmia_calibrated", "stack", "ensemble_calibrated")
MODES = ("given", "oracle", "auto")


def best(attacks: dict[str, dict[str, float]], names: tuple[str, ...]) -> tuple[str, dict[str, float]] | None:
    present = [(name, attacks[name]) for name in names if name in attacks]
    return max(present, key=lambda item: (item[1]["tpr@0.05"], item[1]["auc"])) if present else None


def study_targets() -> list[str]:
    """The target recipes in the order the shipped study sweeps them (its row order here), read
    from conf/experiment/study_recipe_mismatch.yaml so that a recipe added there needs no edit here."""
    sweep = OmegaConf.load(Path(CONFIG_DIR) / "experiment" / "study_recipe_mismatch.yaml")
    return [name.strip() for name in str(sweep.hydra.sweeper.params["+task/train"]).split(",")]


def rows(root: Path) -> list[dict[str, Any]]:
    out = []
    for job in find_jobs(root):
        if job.metrics is None:
            continue
        target = str(job.overrides.get("task/train", "sgd30"))
        mode = str(job.overrides.get("shadow.recipe", "given"))
        row: dict[str, Any] = {"target": target, "mode": mode, "job": job.label, "dir": str(job.dir),
                               "pairing": pairing_key(job.metrics),
                               "target_acc": job.metrics.get("models", {}).get("target", {})}
        for kind, names in (("uncalibrated", UNCALIBRATED), ("calibrated", CALIBRATED)):
            found = best(job.metrics["attacks"], names)
            if found:
                name, values = found
                row.update({f"{kind}_attack": name, **{f"{kind}_{k}": values[k] for k in ("tpr@0.05", "tpr@0.01",
                                                                                            "auc")}})
        recipe = job.metrics.get("recipe") or {}
        row["chosen"] = " + ".join([recipe.get("describe", ""),  # shadow.search.mix > 1: the runners-up too
                                    *(m["describe"] for m in recipe.get("mixed_with", []))])
        row["search_candidates"] = recipe.get("candidates", 0)
        row["search_seconds"] = recipe.get("seconds", 0.0)
        row["submitted"] = job.metrics.get("submit")
        submitted = job.metrics["attacks"].get(row["submitted"] or "", {})
        row.update({f"submitted_{k}": submitted[k] for k in ("tpr@0.05", "tpr@0.01", "auc") if k in submitted})
        row["warnings"] = len(job.metrics.get("warnings", []))
        out.append(row)
    order = {name: i for i, name in enumerate(study_targets())}
    return sorted(out, key=lambda r: (order.get(r["target"], 99), r["target"], MODES.index(r["mode"])))


def cell(row: dict[str, Any] | None, kind: str) -> str:
    if not row or f"{kind}_attack" not in row:
        return "-"
    return (f"{row[f'{kind}_tpr@0.05']:.3f} / {row[f'{kind}_tpr@0.01']:.3f} / {row[f'{kind}_auc']:.3f} "
            f"({row[f'{kind}_attack']})")


def pairing_key(metrics: dict[str, Any]) -> str | None:
    """What two runs must share for their bootstrap replicates to be paired: the same points, the same resamples."""
    boot = metrics.get("bootstrap") or {}
    if not boot or not metrics.get("task_dir"):
        return None
    return json.dumps([metrics["task_dir"], metrics.get("eval"), metrics.get("eval_points"), boot.get("seed"),
                       boot.get("resamples"), boot.get("positives"), boot.get("negatives")])


def replicates(row: dict[str, Any], attack: str, metric: str) -> torch.Tensor | None:
    """[B]: one attack's metric on each bootstrap resample of priv's truth, from the run's bootstrap.pt."""
    if not (Path(row["dir"]) / "bootstrap.pt").is_file():
        return None
    try:
        saved = read_bootstrap(Path(row["dir"]))  # the same checked reader as `mia-summarize --compare`
    except MiaError:
        return None
    if attack not in saved["attacks"] or metric not in saved["metrics"]:
        return None
    return saved["replicates"][saved["attacks"].index(attack), saved["metrics"].index(metric)]


def paired_ratio(auto: dict[str, Any], oracle: dict[str, Any], metric: str) -> list[float] | None:
    """The 95% (bootstrap.LEVEL) interval of auto's calibrated / the oracle's uncalibrated metric over shared resamples."""
    if auto.get("pairing") is None or auto.get("pairing") != oracle.get("pairing"):
        return None
    ours = replicates(auto, auto["calibrated_attack"], metric)
    theirs = replicates(oracle, oracle["uncalibrated_attack"], metric)
    if ours is None or theirs is None or ours.shape != theirs.shape:
        return None
    return [float(v) for v in ratio_interval(ours, theirs)]


def bar_pair(auto: dict[str, Any] | None, oracle: dict[str, Any] | None) -> bool:
    """Whether the issue's bar can be computed: auto has a calibrated attack, the oracle an uncalibrated one."""
    return bool(auto and oracle and "calibrated_attack" in auto and "uncalibrated_attack" in oracle)


def add_paired_intervals(table: list[dict[str, Any]]) -> None:
    """Give each auto row `ratio_<metric>_ci`: its ratio's paired interval against its target's oracle (or None)."""
    by = {(r["target"], r["mode"]): r for r in table}
    for (target, mode), auto in by.items():
        oracle = by.get((target, "oracle"))
        if mode == "auto" and bar_pair(auto, oracle):
            for metric in ("tpr@0.05", "tpr@0.01"):
                auto[f"ratio_{metric}_ci"] = paired_ratio(auto, oracle, metric)


def ratios(auto: dict[str, Any] | None, oracle: dict[str, Any] | None) -> str:
    """The issue's bar: auto + its best calibrated attack over oracle + its best uncalibrated one."""
    if not bar_pair(auto, oracle):
        return "-"
    parts = []
    for metric in ("tpr@0.05", "tpr@0.01"):
        text = f"{auto[f'calibrated_{metric}'] / max(oracle[f'uncalibrated_{metric}'], 1e-9):.2f}x"
        interval = auto.get(f"ratio_{metric}_ci")
        parts.append(text + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""))
    return ", ".join(parts)


def submitted(row: dict[str, Any] | None) -> str:
    """What the run itself submitted (chosen on pub), and how it did on priv's truth."""
    if not row or "submitted_tpr@0.05" not in row:
        return "-"
    return f"{row['submitted']}: {row['submitted_tpr@0.05']:.3f} / {row['submitted_tpr@0.01']:.3f} / {row['submitted_auc']:.3f}"


def markdown(table: list[dict[str, Any]]) -> str:
    by = {(r["target"], r["mode"]): r for r in table}
    targets = list(dict.fromkeys(r["target"] for r in table))
    lines = ["| target recipe | default shadows | default + calibrated | oracle shadows | auto | auto + calibrated "
             "| auto + calibrated / oracle (TPR@5%, TPR@1%; 95% paired interval) | the search chose | auto: submitted (chosen on pub) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for target in targets:
        given, oracle, auto = (by.get((target, mode)) for mode in MODES)
        chose = f"{auto['chosen']} ({auto['search_candidates']} candidates, {auto['search_seconds']:.0f} s)" if auto else "-"
        lines.append(f"| {target} | {cell(given, 'uncalibrated')} | {cell(given, 'calibrated')} | "
                     f"{cell(oracle, 'uncalibrated')} | {cell(auto, 'uncalibrated')} | {cell(auto, 'calibrated')} | "
                     f"{ratios(auto, oracle)} | {chose} | {submitted(auto)} |")
    return "\n".join(lines) + "\n"


def plot(table: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    targets = list(dict.fromkeys(r["target"] for r in table))
    by = {(r["target"], r["mode"]): r for r in table}
    series = [("given", "uncalibrated", "default shadows"), ("given", "calibrated", "default + calibrated"),
              ("oracle", "uncalibrated", "oracle shadows"), ("auto", "uncalibrated", "auto"),
              ("auto", "calibrated", "auto + calibrated")]
    figure = Figure(figsize=(10, 4), dpi=110)
    FigureCanvasAgg(figure)
    for col, metric in enumerate(("tpr@0.05", "tpr@0.01")):
        axes = figure.add_subplot(1, 2, col + 1)
        width = 0.8 / len(series)
        for i, (mode, kind, label) in enumerate(series):
            values = [by.get((t, mode), {}).get(f"{kind}_{metric}", 0.0) for t in targets]
            axes.bar([x + i * width for x in range(len(targets))], values, width, label=label)
        axes.set_xticks([x + 0.4 - width / 2 for x in range(len(targets))])
        axes.set_xticklabels(targets, fontsize=8)
        axes.set_ylabel(f"TPR at {metric[4:]} FPR (priv, hidden truth)")
        axes.grid(True, axis="y", alpha=0.3)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(series), fontsize=7, frameon=False)
    figure.suptitle("recipe mismatch: best attack per shadow set, by target recipe", fontsize=10)
    figure.tight_layout(rect=(0, 0.06, 1, 1))  # room below the panels for the legend, off the bars
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    table = rows(args.dir)
    add_paired_intervals(table)
    out = args.out or args.dir
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(table)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=sorted({k for r in table for k in r}), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()} for r in table)
    atomic_write_text(out / "study_recipe_mismatch.csv", buffer.getvalue())
    atomic_write_text(out / "study_recipe_mismatch.md", text)
    plot(table, out / "study_recipe_mismatch.png")
    print(text)


if __name__ == "__main__":
    main()
