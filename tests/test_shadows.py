"""Shadow models in the store: trained once, resumable after SIGKILL, keyed by recipe."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import fit_starts, fresh_store, kill_at_first_checkpoint, make_cfg, MIA, REPO, run_mia, TINY
from mia_lightning.data.augment import mirror_images
from mia_lightning.errors import MiaError
from mia_lightning.io.locks import FileLock
from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.logits.infer import compute_logits
from mia_lightning.logits.logits_file import read_logits
from mia_lightning.logits.queries import parse_queries
from mia_lightning.models.resnet import Normalize, build_resnet18
from mia_lightning.pipeline import open_run, run_pipeline
from mia_lightning.shadows.runner import ensure_shadows
from mia_lightning.stages.shadows import shadow_set
from mia_lightning.stages.task import obtain_task


def entry_dirs(store: Path) -> list[Path]:
    """Shadow store entries (<fingerprint>/<recipe-hash>) under a store root."""
    return sorted(p.parent for p in store.glob("*/*/recipe.json"))


@pytest.fixture(scope="module")
def shadow_store(tiny_task_dir, tmp_path_factory) -> Path:
    """A store holding the tiny task (copied) and its two trained shadows."""
    store = tmp_path_factory.mktemp("shadow_store")
    fresh_store(tiny_task_dir, store)
    run_pipeline(make_cfg(*TINY, "stage=shadows", f"store.root={store}"), store / "run1")
    return store


def test_shadows_are_trained_once_with_logits_and_done_markers(shadow_store):
    (entry,) = entry_dirs(shadow_store)
    keep = safe_torch_load(entry / "keep.pt")
    assert keep.shape == (2, 320) and (keep.sum(0) == 1).all()
    for index in range(2):
        shadow = entry / f"shadow_{index:03d}"
        for name in ("done", "weights.pt", "logits.pt", "summary.json", "checkpoints/last.ckpt"):
            assert (shadow / name).is_file(), name
        logits = read_logits(shadow / "logits.pt", 320)
        assert list(logits) == ["identity", "mirror"]
        assert logits["identity"].shape == (320, 10) and logits["identity"].dtype == torch.float32
        assert len(fit_starts(shadow)) == 1
        assert list((shadow / "tb").glob("events.out.tfevents.*"))
        trained_on = json.loads((shadow / "summary.json").read_text())["trained_on"]
        assert trained_on["device"] == "cpu" and trained_on["cpu_threads"] == torch.get_num_threads()
    # a second run trains nothing
    run_pipeline(make_cfg(*TINY, "stage=shadows", f"store.root={shadow_store}"), shadow_store / "run2")
    assert [len(fit_starts(entry / f"shadow_{i:03d}")) for i in range(2)] == [1, 1]


def test_mirror_query_equals_logits_of_flipped_images(shadow_store):
    (entry,) = entry_dirs(shadow_store)
    cfg = make_cfg(*TINY, f"store.root={shadow_store}")
    task = obtain_task(open_run(cfg, shadow_store / "run_read"))
    net = build_resnet18(task.num_classes, task.stem)
    net.load_state_dict(safe_torch_load(entry / "shadow_001" / "weights.pt"))
    stored = read_logits(entry / "shadow_001" / "logits.pt", task.pool_size)
    identity = parse_queries(["identity"])
    flipped = compute_logits(net, Normalize(task.mean, task.std), mirror_images(task.pool_images), identity)[:, 0]
    assert torch.allclose(stored["mirror"], flipped, atol=1e-4)
    assert torch.allclose(stored["identity"], compute_logits(net, Normalize(task.mean, task.std),
                                                             task.pool_images, identity)[:, 0], atol=1e-4)


def test_auto_queries_are_the_views_the_models_trained_on():
    assert [q.name for q in parse_queries(["auto"], train_flip=False)] == ["identity"]
    assert [q.name for q in parse_queries(["auto"], train_flip=True)] == ["identity", "mirror"]
    assert [q.name for q in parse_queries(["auto", "shift_1_0"], train_flip=True)] == ["identity", "mirror", "shift_1_0"]
    with pytest.raises(MiaError, match="duplicate"):
        parse_queries(["auto", "identity"])
    assert make_cfg("task=simulate_digits").attack.queries == ["auto"]


def test_new_queries_are_added_to_stored_logits_without_training(shadow_store):
    (entry,) = entry_dirs(shadow_store)
    cfg = make_cfg(*TINY, f"store.root={shadow_store}", "stage=logits", "attack.queries=[identity,shift_1_0]")
    run_pipeline(cfg, shadow_store / "run_logits")
    logits = read_logits(entry / "shadow_000" / "logits.pt", 320)
    assert set(logits) == {"identity", "mirror", "shift_1_0"}
    assert len(fit_starts(entry / "shadow_000")) == 1


def test_changed_recipe_gets_a_new_store_entry_and_count_does_not(shadow_store):
    before = entry_dirs(shadow_store)
    cfg = make_cfg(*TINY, f"store.root={shadow_store}", "stage=shadows", "shadow.count=4", "shadow.only=[0]")
    run_pipeline(cfg, shadow_store / "run_count")
    assert entry_dirs(shadow_store) == before  # same recipe, bigger count: same entry, keep mask extended
    assert safe_torch_load(before[0] / "keep.pt").shape[0] == 4
    cfg = make_cfg(*TINY, f"store.root={shadow_store}", "stage=shadows", "shadow.epochs=1", "shadow.only=0")
    run_pipeline(cfg, shadow_store / "run_epochs")
    after = entry_dirs(shadow_store)
    assert len(after) == 2
    assert json.loads((sorted(set(after) - set(before))[0] / "recipe.json").read_text())["epochs"] == 1


def test_sigkill_mid_shadow_then_rerun_resumes_to_the_uninterrupted_weights(tiny_task_dir, tmp_path):
    args = [*TINY, "stage=shadows", "shadow.only=0", "shadow.epochs=5"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for store in (reference, killed):
        fresh_store(tiny_task_dir, store)
    run_mia(*args, f"store.root={reference}")
    shadow = kill_at_first_checkpoint(args, killed)

    run_mia(*args, f"store.root={killed}")
    starts = fit_starts(shadow)
    assert [s["resume"] for s in starts] == [False, True]
    (ref_shadow,) = reference.glob("*/*/shadow_000")
    assert shadow.relative_to(killed) == ref_shadow.relative_to(reference)  # same store key
    ours, theirs = safe_torch_load(shadow / "weights.pt"), safe_torch_load(ref_shadow / "weights.pt")
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    assert torch.equal(safe_torch_load(shadow / "logits.pt")["logits"], safe_torch_load(ref_shadow / "logits.pt")["logits"])


def test_a_trainer_holds_only_the_shadow_it_trains_so_a_second_run_can_take_the_next(tiny_task_dir, tmp_path):
    """Two plain runs on one store entry share its shadows: while the first trains shadow 0,
    shadows 1 and 2 are free for another process (it used to hold every lock up front)."""
    fresh_store(tiny_task_dir, tmp_path)
    free: list[bool] = []

    def probe(shadow_0: Path) -> None:
        for index in (1, 2):
            lock = FileLock(shadow_0.parent / f"shadow_{index:03d}" / "lock")
            free.append(lock.try_acquire())
            lock.release()

    kill_at_first_checkpoint([*TINY, "stage=shadows", "shadow.count=4", "shadow.epochs=5"], tmp_path, probe)
    assert free == [True, True]


def test_without_waiting_a_run_trains_the_free_shadows_and_leaves_those_another_process_trains(
        tiny_task_dir, tmp_path, caplog):
    """ensure_shadows(wait=False), as a search uses it beside another search on the same store:
    it trains what no other process holds and returns at once instead of waiting for the rest."""
    fresh_store(tiny_task_dir, tmp_path)
    run = open_run(make_cfg(*TINY, "shadow.epochs=1", f"store.root={tmp_path}"), tmp_path / "run")
    job = shadow_set(run, obtain_task(run)).job
    other_process = FileLock(job.store.lock_path(0))
    assert other_process.try_acquire()
    try:
        with caplog.at_level("INFO", logger="mia"):
            trained = ensure_shadows(job, [0, 1], wait=False)
            assert ensure_shadows(job, [0], wait=False) == {}  # nothing free: back at once, nothing said
    finally:
        other_process.release()
    assert sorted(trained) == [1] and job.store.is_done(1) and not job.store.is_done(0)
    assert caplog.text.count("that no other process is training") == 1  # the first call's
    assert "waiting for" not in caplog.text
    assert sorted(ensure_shadows(job, [0, 1])) == [0]  # released: the next call takes it over


def test_multirun_over_shadow_only_fills_one_dir_per_job(tiny_task_dir, tmp_path):
    fresh_store(tiny_task_dir, tmp_path)
    run_mia("-m", *TINY, "shadow.epochs=1", "stage=shadows", "shadow.count=4", "shadow.only=0,1,2,3",
            f"store.root={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    (entry,) = entry_dirs(tmp_path)
    assert sorted(p.name for p in entry.glob("shadow_*") if (p / "done").is_file()) == [
        "shadow_000", "shadow_001", "shadow_002", "shadow_003"]
    assert sorted(p.name for p in (tmp_path / "sweep").glob("[0-9]*")) == [f"{i}_shadow.only={i}" for i in range(4)]


def test_slurm_launcher_config_composes_without_slurm():
    out = run_mia("hydra/launcher=slurm", "--cfg", "hydra").stdout
    assert "SlurmLauncher" in out and "gpus_per_node: 1" in out


def _run_with_stderr_on_a_terminal(args: list[str]) -> tuple[str, str]:
    """`mia args` with stderr on a pseudo-terminal (where bars are drawn) and stdout on a pipe."""
    import fcntl
    import os
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    chunks: list[bytes] = []

    def drain() -> None:  # read as it comes: a full pty buffer would block the child
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.run([*MIA, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=slave, timeout=600)
    os.close(slave)
    reader.join(timeout=30)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks)[-3000:]
    return proc.stdout.decode(), b"".join(chunks).decode(errors="replace")


def test_progress_is_one_labelled_bar_per_model_on_a_terminal_and_one_line_per_model_in_a_log(tmp_path, tiny_task_dir):
    """On a terminal: one bar per model, labelled and counting epochs from 1, none of Lightning's
    stray bars; off it (a pipe, a SLURM log): no bar, no escape codes, one line per finished model."""
    store = tmp_path / "store"
    fresh_store(tiny_task_dir, store)
    args = [a for a in TINY if not a.startswith(("trainer.enable_progress_bar", "shadow.batch_size"))]
    stdout, terminal = _run_with_stderr_on_a_terminal(
        [*args, "stage=shadows", "shadow.count=1", "shadow.batch_size=8", f"store.root={store}",
         f"hydra.run.dir={tmp_path / 'run'}"])
    epochs = 4  # TINY's shadow epochs
    assert "shadow_000 (1/1) epoch 1/4" in terminal and f"shadow_000 (1/1) epoch {epochs}/{epochs}" in terminal
    for noise in ("Training", "Epoch 0", "v_num", "shadows:"):  # Lightning's bars, the old outer bar
        assert noise not in terminal, noise
    assert "\x1b[" not in stdout and "\r" not in stdout
    finished = [line for line in stdout.splitlines() if line.startswith("shadow_000 (1/1): train acc")]
    assert len(finished) == 1 and "shadow_000 (1/1): train acc" not in terminal
    assert stdout.strip().splitlines()[-1].startswith("mia: done in ")
