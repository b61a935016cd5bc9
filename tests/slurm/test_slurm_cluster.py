"""The cluster path on a real SLURM (`make test-slurm` starts a one-node cluster for it).

`scripts/slurm_shadows_then_attack.sh` runs the tiny digits task through
`hydra/launcher=slurm_cpu`: the task as one job, two shadows as an array job (one is
requeued with `scontrol requeue` mid-training, the other gets USR2 mid-training; both
resume from last.ckpt), the attacks as one more job. The store must end complete, each
shadow trained from scratch once and resumed once, with the weights, logits and
submission of a run without SLURM. Around it: what sbatch refuses, and a job that leaves
the queue without a result, end in one line instead of a traceback or a hang.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

if os.environ.get("MIA_SLURM_CLUSTER") != "1":
    pytest.skip("needs a running SLURM: `make test-slurm` starts one for these tests", allow_module_level=True)

import torch  # noqa: E402  (after the skip: collection stays cheap without a cluster)

from conftest import fit_starts, MIA, REPO, TINY  # noqa: E402
from mia_lightning.io.safe_load import safe_torch_load  # noqa: E402

EPOCHS = 8  # ~1 s each: the interruptions land after the first checkpoint, well before the end
TASK = [arg for arg in TINY if not arg.startswith(("shadow.epochs=", "shadow.count="))] + [f"shadow.epochs={EPOCHS}"]
SIZE = ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=30",
        "hydra.launcher.queue_check_s=2"]
ENV = {"OMP_NUM_THREADS": "1"}  # what slurm_cpu gives a 1-CPU job; the same weights need the same threads
MIA_BIN = str(Path(sys.executable).parent / "mia")


@pytest.fixture(autouse=True, scope="module")
def _sigterm_unwinds():
    """A `timeout` ends pytest with SIGTERM: unwind (the fixtures' finally blocks stop the
    script's own process group) instead of dying and leaving a launcher waiting for ever."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    before = signal.signal(signal.SIGTERM, interrupt)
    yield
    signal.signal(signal.SIGTERM, before)


def squeue() -> list[tuple[str, str, str]]:
    """(job id, state, reason) of every job in the queue; array elements as `<id>_<index>`."""
    out = subprocess.run(["squeue", "--array", "--noheader", "--format=%i|%T|%r"], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line.strip()]  # type: ignore[misc]


def slurm(*command: str) -> str:
    """Run a SLURM command; its output, for the record of what each interruption printed."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
    return f"$ {' '.join(command)}  (exit 0) {done.stdout.strip()}{done.stderr.strip()}"


def cluster_record(outputs: Path, job_ids: list[str]) -> str:
    """What a failed cluster run leaves to read: each job's last log lines and what
    slurmctld logged about it (the cluster's temp dir is removed when the tests end)."""
    parts = []
    for log in sorted(outputs.glob("multirun/*/*/*/.submitit/*/*_log.*")):
        parts.append(f"--- {log.relative_to(outputs)} (last lines)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    ctld = Path(os.environ.get("SLURM_CONF", "/nonexistent")).parent / "slurmctld.log"
    if ctld.is_file():
        ids = {job_id.split("_")[0] for job_id in job_ids} | set(job_ids)
        lines = [line for line in ctld.read_text(errors="replace").splitlines()
                 if any(re.search(rf"JobId={re.escape(i)}\b", line) for i in ids)]
        parts.append("--- slurmctld.log about jobs " + ", ".join(sorted(ids)) + "\n" + "\n".join(lines[-40:]))
    return "\n".join(parts)


def mia(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*MIA, *args], cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True,
                          timeout=timeout)


def test_sbatch_refusing_a_gpu_job_on_cpu_nodes_is_one_line_naming_the_preset(tmp_path):
    proc = mia("-m", "stage=simulate", *TASK, "hydra/launcher=slurm", "trainer=gpu", f"store.root={tmp_path}",
               f"hydra.sweep.dir={tmp_path / 'sweep'}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("mia: error: sbatch refused the jobs: sbatch: error: Invalid generic resource")
    assert "hydra.launcher.gpus_per_node=1" in lines[0] and "hydra/launcher=slurm_cpu trainer=cpu" in lines[0]
    assert not squeue()


def test_a_job_cancelled_while_pending_fails_with_one_line_instead_of_hanging(tmp_path):
    """The GPU preset's job with its GPU taken off asks for more CPUs than the node has: SLURM
    (no EnforcePartLimits) keeps it pending for ever; mia says so, and once the job is
    cancelled it fails the launch (exit 1) instead of waiting for a result that never comes."""
    launcher = subprocess.Popen(
        [*MIA, "-m", "stage=simulate", *TASK, "hydra/launcher=slurm", "trainer=cpu", "hydra.launcher.gpus_per_node=0",
         f"hydra.launcher.cpus_per_task={os.cpu_count() + 1}", "hydra.launcher.timeout_min=5",
         "hydra.launcher.queue_check_s=1", "hydra.launcher.vanished_after_s=3", f"store.root={tmp_path}",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=REPO, env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not [job for job in squeue() if job[1] == "PENDING" and job[2] == "PartitionConfig"]:
            assert launcher.poll() is None and time.monotonic() < deadline, "the job never showed up pending"
            time.sleep(0.5)
        time.sleep(3)  # the launcher's squeue check (every second) sees it pending first
        (job_id,) = [job[0] for job in squeue()]
        slurm("scancel", job_id)
        _, stderr = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    lines = stderr.strip().splitlines()
    assert launcher.returncode == 1, stderr
    assert [re.match(r"mia: (\w+): ", line).group(1) for line in lines] == ["warning", "warning", "error"], stderr
    assert "timeout_min=5 is 10 or less" in lines[0] and "max_num_timeout=5" in lines[0]
    assert f"SLURM job {job_id} (#0) cannot start (pending: PartitionConfig)" in lines[1]
    assert f"cpus_per_task={os.cpu_count() + 1}" in lines[1]
    assert f"SLURM job {job_id} (#0) left the queue without a result" in lines[2] and "it never ran" in lines[2]


def test_a_job_that_fails_inside_passes_its_one_line_up(tmp_path):
    missing = tmp_path / "missing.pt"
    proc = mia("-m", "stage=simulate", "experiment=tml25", *[f"task.{key}={missing}" for key in ("pub", "priv", "target")],
               "hydra/launcher=slurm_cpu", "trainer=cpu", *SIZE, "hydra.launcher.vanished_after_s=3",
               f"hydra.sweep.dir={tmp_path / 'sweep'}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert re.match(r"mia: error: SLURM job \d+ \(#0\) left the queue without a result \(last state: [^)]+\): "
                    r"mia: error: task.pub=\S+missing\.pt: file not found; log: ", lines[0]), lines[0]
    assert "; log: " in lines[0] and lines[0].endswith("_0_log.err")


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory) -> dict:
    """The reference run without SLURM (in parallel), and the script's run through SLURM
    with its two interruptions; returns where everything is and what was printed."""
    root = tmp_path_factory.mktemp("cluster")
    ref_store, slurm_store, outputs = root / "ref_store", root / "slurm_store", root / "outputs"
    reference = subprocess.Popen([*MIA, *TASK, "shadow.count=2", f"store.root={ref_store}", f"hydra.run.dir={root / 'ref_run'}"],
                                 cwd=REPO, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    env = {**os.environ, **ENV, "MIA": MIA_BIN, "COUNT": "2", "SLURM_PRESET": "slurm_cpu",
           "MIA_STORE": str(slurm_store), "MIA_OUTPUTS": str(outputs)}
    log = open(root / "script.log", "w")
    script = subprocess.Popen([str(REPO / "scripts" / "slurm_shadows_then_attack.sh"), *TASK, *SIZE], cwd=REPO,
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    printed: dict[str, list[str]] = {"requeue": [], "usr2": []}
    interrupted: dict[int, str] = {}
    states: dict[str, list[str]] = {}  # each job's states as squeue showed them, for a failure's record
    begin_wait: dict[str, float] = {}  # job id -> when squeue first showed it waiting for its BeginTime
    try:
        deadline = time.monotonic() + 300
        while script.poll() is None:
            assert time.monotonic() < deadline, "the SLURM run took over 5 minutes"
            queue = squeue()
            for job_id, state, reason in queue:
                shown = states.setdefault(job_id, [])
                if not shown or shown[-1] != f"{state}({reason})":
                    shown.append(f"{state}({reason})")
            array = {int(job_id.split("_")[1]): (job_id, state, reason) for job_id, state, reason in queue if "_" in job_id}
            for index, how in ((0, "requeue"), (1, "usr2")):
                if index in interrupted or index not in array or array[index][1] != "RUNNING":
                    continue
                shadow = next(iter(slurm_store.glob(f"*/*/shadow_{index:03d}")), None)
                if shadow and (shadow / "checkpoints" / "last.ckpt").is_file() and not (shadow / "done").exists():
                    command = ("scontrol", "requeue", array[index][0]) if how == "requeue" else (
                        "scancel", "--signal=USR2", array[index][0])
                    printed[how].append(slurm(*command))
                    interrupted[index] = array[index][0]
            for job_id, state, reason in array.values():
                # a requeued job waits ~120 s (cred_expire); start it sooner, but 5 s after the requeue:
                # slurmd refuses a credential made no later than the second in which it revoked the
                # old one ("Job credential revoked": the job failed, once, on a loaded machine)
                waiting = state == "PENDING" and reason == "BeginTime"
                since = begin_wait.setdefault(job_id, time.monotonic()) if waiting else begin_wait.pop(job_id, None)
                if waiting and time.monotonic() - since >= 5.0:
                    slurm("scontrol", "update", f"JobId={job_id}", "StartTime=now")
            time.sleep(0.3)
    finally:
        if script.poll() is None:  # interrupted or out of time: stop all it started, and the reference
            os.killpg(script.pid, signal.SIGTERM)
            reference.kill()
        script.wait(timeout=60)
        log.close()
        _, ref_err = reference.communicate(timeout=300)
    output = (root / "script.log").read_text()
    assert script.returncode == 0, output[-4000:] + "\n" + "\n".join(
        f"squeue showed {job_id}: {' -> '.join(shown)}" for job_id, shown in states.items()) + "\n" + cluster_record(
        outputs, list(states))
    assert reference.returncode == 0, ref_err[-3000:]
    return {"root": root, "ref_store": ref_store, "slurm_store": slurm_store, "outputs": outputs,
            "output": output, "interrupted": interrupted, "printed": printed}


def job_log(run: dict, job_id: str) -> str:
    """A shadow job's log: submitit's INFO lines go to its .out, warnings and errors to its .err."""
    (folder,) = run["outputs"].glob(f"multirun/slurm_shadows_then_attack/*/shadows/.submitit/{job_id}")
    return "".join((folder / f"{job_id}_0_log.{kind}").read_text() for kind in ("out", "err"))


def test_interrupted_shadows_resume_to_the_weights_of_a_run_without_slurm(cluster_run):
    assert sorted(cluster_run["interrupted"]) == [0, 1], cluster_run["interrupted"]  # both were interrupted
    (entry,) = {p.parent for p in cluster_run["slurm_store"].glob("*/*/shadow_*")}
    (ref_entry,) = {p.parent for p in cluster_run["ref_store"].glob("*/*/shadow_*")}
    assert entry.relative_to(cluster_run["slurm_store"]) == ref_entry.relative_to(cluster_run["ref_store"])
    assert sorted(p.name for p in entry.glob("shadow_*")) == ["shadow_000", "shadow_001"]
    for name in ("shadow_000", "shadow_001"):
        shadow, ref = entry / name, ref_entry / name
        assert (shadow / "done").is_file()
        assert [start["resume"] for start in fit_starts(shadow)] == [False, True], name  # from scratch once
        for file in ("weights.pt", "logits.pt"):
            ours, theirs = safe_torch_load(shadow / file), safe_torch_load(ref / file)
            assert ours.keys() == theirs.keys()
            for key in ours:  # logits.pt also holds the query names
                same = torch.equal(ours[key], theirs[key]) if torch.is_tensor(ours[key]) else ours[key] == theirs[key]
                assert same, f"{name}/{file}: {key} differs from the run without SLURM"


def test_each_interruption_did_what_it_should_and_said_so(cluster_run):
    requeued, usr2 = cluster_run["interrupted"][0], cluster_run["interrupted"][1]
    requeue_log, usr2_log = job_log(cluster_run, requeued), job_log(cluster_run, usr2)
    # scontrol requeue: SIGTERM to the job; submitit bypasses it, Lightning stops, mia exits 143, SLURM requeues
    assert "DUE TO JOB REQUEUE" in requeue_log and "Bypassing signal SIGTERM" in requeue_log
    assert "mia: terminated (SIGTERM); rerun the same command to resume" in requeue_log
    # USR2: submitit's handler calls the launcher's checkpoint and requeues the job itself
    assert "Caught signal SIGUSR2" in usr2_log and "this job is preempted" in usr2_log
    assert re.search(r"Requeued job \d+_1 \(5 remaining timeouts\)", usr2_log)
    def said(log: str, pattern: str) -> list[str]:  # submitit logs each line twice (its handler and Hydra's)
        return [line for line in dict.fromkeys(log.splitlines()) if re.search(pattern, line) and not line.startswith("[")]

    print("\n".join(["what each interruption printed:", *cluster_run["printed"]["requeue"],
                     *said(requeue_log, r"REQUEUE|SIGTERM|mia:|exit code"), *cluster_run["printed"]["usr2"],
                     *said(usr2_log, r"REQUEUE|SIGUSR2|Requeued|exit code")]))


def test_the_attack_job_gives_the_submission_of_a_run_without_slurm_where_the_script_says(cluster_run):
    last = cluster_run["output"].strip().splitlines()[-1]
    match = re.fullmatch(r"done: metrics.json, roc\*.png and submission.csv are in (\S+)/", last)
    assert match, last
    place = Path(match.group(1))
    assert place.is_relative_to(cluster_run["outputs"])  # MIA_OUTPUTS moved it, and the script says where
    ref_run = cluster_run["root"] / "ref_run"
    assert (place / "submission.csv").read_bytes() == (ref_run / "submission.csv").read_bytes()
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (place, ref_run))
    assert ours["attacks"] == theirs["attacks"] and ours["submit"] == theirs["submit"]
    deadline = time.monotonic() + 30  # a job may still be exiting after its result is written
    while squeue():
        assert time.monotonic() < deadline, squeue()
        time.sleep(0.5)


def test_a_job_preempted_by_a_higher_partition_is_requeued_by_slurm_and_resumes(cluster_run, tmp_path):
    """Real preemption (PreemptType=preempt/partition_prio, PreemptMode=REQUEUE): SLURM sends
    SIGTERM, not USR2; mia exits 143 and SLURM itself requeues the job, which resumes."""
    store = tmp_path / "store"
    shutil.copytree(cluster_run["slurm_store"] / "tasks", store / "tasks")  # the task, no simulate job
    launcher = subprocess.Popen(
        [*MIA, "-m", "stage=shadows", *TASK, "shadow.count=2", "shadow.only=0", "hydra/launcher=slurm_cpu",
         "trainer=cpu", *SIZE, f"store.root={store}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=REPO, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    printed, job_id = [], None
    try:
        deadline = time.monotonic() + 150
        while launcher.poll() is None:
            assert time.monotonic() < deadline, "the preempted shadow did not finish in time"
            queue = {job: (state, reason) for job, state, reason in squeue()}
            shadow = next(iter(store.glob("*/*/shadow_000")), None)
            if job_id is None and shadow and (shadow / "checkpoints" / "last.ckpt").is_file() and not (
                    shadow / "done").exists():
                (job_id,) = [job for job, (state, _) in queue.items() if state == "RUNNING"]
                memory_mb = int(subprocess.run(["sinfo", "-h", "-p", "high", "-o", "%m"], capture_output=True,
                                               text=True, check=True).stdout.split()[0])
                # all of the node's memory: it fits only once the shadow's job is off the node
                printed.append(slurm("sbatch", "--partition=high", f"--mem={memory_mb}M", "--output=/dev/null",
                                     "--wrap=sleep 1"))
            if job_id and queue.get(job_id) == ("PENDING", "BeginTime"):
                slurm("scontrol", "update", f"JobId={job_id}", "StartTime=now")
            time.sleep(0.3)
        _, stderr = launcher.communicate(timeout=30)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, stderr[-3000:]
    assert job_id is not None, "the shadow ended before it could be preempted"
    (shadow,) = store.glob("*/*/shadow_000")
    assert [start["resume"] for start in fit_starts(shadow)] == [False, True]
    ref = next(cluster_run["ref_store"].glob("*/*/shadow_000"))
    ours, theirs = safe_torch_load(shadow / "weights.pt"), safe_torch_load(ref / "weights.pt")
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs), "the preempted shadow differs"
    (log_dir,) = (tmp_path / "sweep" / ".submitit").glob(job_id)
    log = (log_dir / f"{job_id}_0_log.err").read_text()
    assert "DUE TO PREEMPTION" in log and "Bypassing signal SIGTERM" in log and "SIGUSR2" not in log
    assert "mia: terminated (SIGTERM); rerun the same command to resume" in log
    print("\n".join(["what the preemption printed:", *printed,
                     *[line for line in dict.fromkeys(log.splitlines())
                       if re.search(r"PREEMPTION|SIGTERM|mia:|exit code", line) and not line.startswith("[")]]))
