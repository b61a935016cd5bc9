"""Reading a finished (or partial) multirun: its jobs, what they swept, one CSV row per attack.

A job is a Hydra job dir (a `.hydra/overrides.yaml`, and a `metrics.json` once it has
attacked); the swept parameters are the overrides whose values differ between jobs.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mia_lightning.config.resolvers import format_value, override_key, parse_overrides

METRIC_KEYS = ("auc", "tpr@0.05", "tpr@0.01", "tpr@0.001")




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
        overrides = {override_key(o): o.value() for o in parse_overrides(list(OmegaConf.load(hydra_dir / "overrides.yaml") or []))
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


def cell(value: Any) -> Any:
    return format_value(value) if isinstance(value, (list, tuple, dict, bool)) or value is None else value


def csv_rows(jobs: list[Job], swept: list[str]) -> list[dict[str, Any]]:
    """One row per job and attack."""
    rows = []
    for job in jobs:
        if job.metrics is None:
            continue
        for attack, values in job.metrics.get("attacks", {}).items():
            row: dict[str, Any] = {"job": job.label, **{key: cell(job.values.get(key)) for key in swept},
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


