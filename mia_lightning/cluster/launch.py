"""`MiaSlurmLauncher.launch`: hydra-submitit-launcher's submission, mia's waiting.

The submission is the plugin's own (one executor, one job array, the same sbatch
parameters); what differs is around it: the launch is checked first (resources.py), an
`sbatch` refusal is one line (exit 2), and the wait ends for every job - with its result,
or with one line per job that failed or left the queue without a result, and exit 1 once
the others are done. The plugin's own wait (`job.results()`) never returns for a job
that vanished on a cluster without accounting.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from omegaconf import OmegaConf

from mia_lightning.cluster.resources import check_before_submit, check_watch_keys, pending_hint, sbatch_refusal
from mia_lightning.cluster.watch import Watched, wait_for_results
from mia_lightning.errors import MiaError

log = logging.getLogger(__name__)
WATCH_KEYS = ("queue_check_s", "vanished_after_s")  # ours; submitit does not know them


def log_line(path: Path) -> str:
    """The line of a job's log that says why it ended: its last `mia: ...` line, else its last line."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = [part.strip() for line in text.splitlines() for part in line.split("\r") if part.strip()]
    mia_lines = [line for line in lines if line.startswith("mia: ")]
    line = (mia_lines or lines or [""])[-1]
    return line if len(line) <= 300 else line[:297] + "..."


def trace_line(message: str) -> str:
    """The last line of the traceback inside a submitit FailedJobError message."""
    lines = [line.strip() for line in message.splitlines()]
    marks = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    block = lines[marks[0] + 1: marks[1]] if len(marks) >= 2 else lines
    block = [line for line in block if line]
    return block[-1] if block else "failed"


def job_labels(job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[str]:
    """`#2 shadow.only=2`: each job's number and the overrides that differ between the jobs."""
    lists = [filter_overrides(overrides) for overrides in job_overrides]
    common = set.intersection(*map(set, lists)) if len(lists) > 1 else set(lists[0] if lists else [])
    return [" ".join([f"#{initial_job_idx + i}", *[o for o in overrides if o not in common]])
            for i, overrides in enumerate(lists)]


def _executor(params: dict[str, Any]) -> Any:
    """submitit's SLURM executor with the launcher's parameters, as the plugin builds it."""
    import submitit

    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if missing:  # submitit would raise a RuntimeError with a traceback
        raise MiaError(f"{missing[0]} not found: hydra/launcher=slurm needs a SLURM submit host "
                       "(on one machine: hydra/launcher=submitit_local)")
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    executor = submitit.AutoExecutor(cluster="slurm", folder=params["submitit_folder"],
                                     slurm_max_num_timeout=params["max_num_timeout"])
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{key if key in base else f"slurm_{key}": value for key, value in params.items()
                                  if key not in ("submitit_folder", "max_num_timeout")})
    return executor


def _submit(launcher: Any, executor: Any, job_params: list[tuple], params: dict[str, Any]) -> list[Any]:
    from submitit.core.utils import FailedJobError

    captured = io.StringIO()  # submitit prints sbatch's stderr before raising; we say it once
    try:
        with contextlib.redirect_stderr(captured):
            return executor.map_array(launcher, *zip(*job_params))
    except FileNotFoundError as error:
        raise MiaError(f"{error.filename or 'sbatch'} not found: hydra/launcher=slurm needs a SLURM submit host "
                       "(on one machine: hydra/launcher=submitit_local)") from None
    except FailedJobError as error:
        raise sbatch_refusal(str(error) or captured.getvalue(), params) from None


def launch_and_wait(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Submit one array of jobs and return their JobReturns once every one has ended."""
    config = launcher.config
    assert config is not None and launcher.hydra_context is not None
    params = dict(launcher.params)
    check_s, vanished_s = (float(params.pop(key)) for key in WATCH_KEYS)
    check_watch_keys(check_s, vanished_s)
    for warning in check_before_submit(config, params):
        print(f"mia: warning: {warning}", file=sys.stderr)

    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if "mode" in config.hydra.sweep:
        os.chmod(sweep_dir, mode=int(str(config.hydra.sweep.mode), 8))
    log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
    labels, job_params = job_labels(job_overrides, initial_job_idx), []
    for offset, overrides in enumerate(job_overrides):
        index = initial_job_idx + offset
        log.info(f"\t#{index} : {' '.join(filter_overrides(overrides))}")
        job_params.append((list(overrides), "hydra.sweep.dir", index, f"job_id_for_{index}", Singleton.get_state()))

    jobs = _submit(launcher, _executor(params), job_params, params)
    log.info(f"submitted SLURM job(s) {', '.join(job.job_id for job in jobs)}; waiting for them "
             f"(squeue every {check_s:g} s; a job gone from it without a result fails after {vanished_s:g} s)")
    label_of = {job.job_id: label for job, label in zip(jobs, labels)}
    stderr_of = {job.job_id: Path(job.paths.stderr) for job in jobs}

    def report_vanished(job: Watched) -> None:
        path = stderr_of[job.job_id]
        why = log_line(path)
        detail = f": {why}" if why else (" and wrote no log: it never ran" if not path.exists() else "")
        print(f"mia: error: SLURM job {job.job_id} ({label_of[job.job_id]}) left the queue without a result "
              f"(last state: {job.last_state}){detail}; log: {path}", file=sys.stderr, flush=True)

    def report_stuck(job: Watched, reason: str) -> None:
        print(f"mia: warning: SLURM job {job.job_id} ({label_of[job.job_id]}) cannot start (pending: {reason}): "
              f"{pending_hint(reason, params)}; `scancel {job.job_id}` ends the wait", file=sys.stderr, flush=True)

    watched = [Watched(job.job_id, Path(job.paths.result_pickle)) for job in jobs]
    vanished = {job.job_id for job in wait_for_results(watched, check_s, vanished_s, report_vanished, report_stuck)}
    returns, failed = [], len(vanished)
    for job in jobs:
        if job.job_id in vanished:
            continue
        try:
            returns.append(job.results()[0])
        except Exception as error:  # the job raised (its traceback is in its log)
            failed += 1
            print(f"mia: error: SLURM job {job.job_id} ({label_of[job.job_id]}) failed: {trace_line(str(error))}; "
                  f"log: {stderr_of[job.job_id]}", file=sys.stderr, flush=True)
    if failed:
        raise SystemExit(1)  # each failed job has had its line; rerunning the command redoes only what is missing
    return returns
