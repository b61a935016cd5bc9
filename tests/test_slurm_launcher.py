"""mia's SLURM launcher without a cluster: the presets compose, a launch that cannot work
stops before `sbatch` with one line, and the queue watchdog gives up on a vanished job.

The same launcher on a real one-node SLURM: tests/slurm/test_slurm_cluster.py (`make test-slurm`).
"""

from __future__ import annotations

import time

import pytest
from hydra import compose, initialize_config_dir

from conftest import run_mia, TINY
from mia_lightning.app import CONFIG_DIR
from mia_lightning.cluster.launch import job_labels, log_line, trace_line
from mia_lightning.cluster.queue import QueueEntry, parse_squeue
from mia_lightning.cluster.resources import check_watch_keys, pending_hint, sbatch_refusal
from mia_lightning.errors import MiaError
from mia_lightning.cluster.watch import Watched, wait_for_results


def launcher_config(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("config", list(overrides), return_hydra_config=True).hydra.launcher


def test_slurm_presets_select_mias_launcher_and_the_cpu_preset_asks_for_no_gpu():
    gpu, cpu = launcher_config("hydra/launcher=slurm"), launcher_config("hydra/launcher=slurm_cpu",
                                                                          "hydra.launcher.cpus_per_task=3")
    assert gpu._target_ == cpu._target_ == "hydra_plugins.mia_slurm_launcher.MiaSlurmLauncher"
    assert (gpu.gpus_per_node, gpu.cpus_per_task, gpu.mem_gb) == (1, 8, 32)
    assert (cpu.gpus_per_node, cpu.cpus_per_task, cpu.mem_gb) == (None, 3, 8)
    assert list(cpu.setup) == ["export OMP_NUM_THREADS=3"]  # torch's threads follow the job's CPUs
    assert cpu.max_num_timeout == gpu.max_num_timeout == 5 and cpu.queue_check_s > 0 and cpu.vanished_after_s > 0


@pytest.mark.parametrize("launch, expected", [
    (["hydra/launcher=slurm_cpu", "trainer=gpu"],
     "mia: error: trainer.accelerator=gpu but hydra.launcher.gpus_per_node=null: the jobs would get no GPU"),
    (["hydra/launcher=slurm", "trainer=cpu"], "mia: error: sbatch not found: hydra/launcher=slurm needs a SLURM"),
], ids=["gpu-trainer-without-gpu", "no-sbatch"])
def test_a_launch_that_cannot_work_is_one_line_before_anything_runs(tmp_path, launch, expected):
    proc = run_mia("-m", "stage=simulate", *TINY, *launch, f"store.root={tmp_path}",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", env={"PATH": str(tmp_path)}, check=False, timeout=120)
    lines = proc.stderr.strip().splitlines()
    warning = [line for line in lines if line.startswith("mia: warning: trainer.accelerator=cpu but each job")]
    assert proc.returncode == 2 and lines[-1].startswith(expected), proc.stderr
    assert len(lines) == 1 + len(warning) and len(warning) == (launch[0] == "hydra/launcher=slurm")
    assert not (tmp_path / "tasks").exists()  # nothing was simulated, locally or elsewhere


def test_refusals_and_stuck_jobs_found_on_real_clusters_name_the_keys_to_change():
    params = {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 32, "timeout_min": 240, "partition": None}
    gres = sbatch_refusal("sbatch: error: Invalid generic resource (gres) specification", params)
    assert "gpus_per_node=1" in str(gres) and "hydra/launcher=slurm_cpu trainer=cpu" in str(gres)
    size = sbatch_refusal("sbatch: error: Batch job submission failed: Requested node configuration is not "
                          "available", params)
    assert "cpus_per_task=8" in str(size) and "mem_gb=32" in str(size) and "\n" not in str(size)
    part = sbatch_refusal("sbatch: error: invalid partition specified: gpu", params)
    assert "hydra.launcher.partition=null" in str(part)
    assert "cpus_per_task=8" in pending_hint("PartitionConfig", params)
    assert "timeout_min=240" in pending_hint("PartitionTimeLimit", params)
    with pytest.raises(MiaError, match="hydra.launcher.queue_check_s=0: must be at least 1"):
        check_watch_keys(0, 60)


def test_squeue_lines_logs_and_tracebacks_reduce_to_what_the_user_needs(tmp_path):
    assert parse_squeue("12_0|RUNNING|None\n12_1|PENDING|BeginTime\n13|COMPLETED|None\n\n") == {
        "12_0": QueueEntry("RUNNING", "None"), "12_1": QueueEntry("PENDING", "BeginTime"),
        "13": QueueEntry("COMPLETED", "None")}
    log = tmp_path / "1_0_log.err"
    log.write_text("shadows:  0%|  | 0/1\rshadows: 50%\nmia: error: task.pub=x.pt: file not found\n"
                   "srun: error: node: task 0: Exited with exit code 2\n")
    assert log_line(log) == "mia: error: task.pub=x.pt: file not found"
    assert log_line(tmp_path / "missing.err") == ""
    message = ("Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent "
               "call last):\n  File \"x.py\", line 1\nRuntimeError: boom\n\n----------------------\nYou can check ...")
    assert trace_line(message) == "RuntimeError: boom"
    assert job_labels([["stage=shadows", "shadow.only=0"], ["stage=shadows", "shadow.only=1"]], 0) == [
        "#0 shadow.only=0", "#1 shadow.only=1"]
    assert job_labels([["stage=attacks"]], 3) == ["#3"]


def test_the_watchdog_gives_up_on_a_job_gone_from_the_queue_and_keeps_one_with_a_result(tmp_path):
    done, gone, stuck = (Watched(str(i), tmp_path / f"{i}_result.pkl") for i in range(3))
    done.result.write_bytes(b"")
    queue = {"2": QueueEntry("PENDING", "PartitionConfig")}
    reported: list[str] = []
    stuck_reasons: list[str] = []
    started = time.monotonic()

    def entries() -> dict[str, QueueEntry]:
        if time.monotonic() - started > 2:  # the stuck job is cancelled after a while
            queue.clear()
        return dict(queue)

    vanished = wait_for_results([done, gone, stuck], 0.2, 1, lambda job: reported.append(job.job_id),
                                lambda job, reason: stuck_reasons.append(reason), entries=entries)
    assert [job.job_id for job in vanished] == reported == ["1", "2"]
    assert stuck_reasons == ["PartitionConfig"] and gone.last_state == "not in squeue"
    assert time.monotonic() - started < 10


def test_the_watchdog_concludes_nothing_while_squeue_cannot_answer(tmp_path):
    job = Watched("7", tmp_path / "7_result.pkl")
    calls = []

    def entries():
        calls.append(1)
        if len(calls) == 3:
            job.result.write_bytes(b"")  # the result arrives while squeue is down
        return None

    assert wait_for_results([job], 0.1, 0, lambda job: None, lambda job, reason: None, entries=entries) == []
    assert len(calls) >= 3


def test_mia_hydra_help_lists_the_slurm_presets():
    proc = run_mia("--hydra-help")
    assert "hydra/launcher: " in proc.stdout and "slurm_cpu" in proc.stdout
