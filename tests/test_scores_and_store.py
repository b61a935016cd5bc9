"""Every score on disk (scores.csv/.pt), error bars in metrics.json, `mia-summarize --compare`, and
shadows in the LiRA layout (`mia-store import|export`), on the tiny simulated task."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, fit_starts, fresh_store, make_cfg
from mia_lightning.errors import MiaError
from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.pipeline import open_run, run_pipeline
from mia_lightning.report.compare import paired
from mia_lightning.report.scores_file import read_scores
from mia_lightning.shadows.lira_layout import read_lira, save_npy, write_lira
from mia_lightning.stages.task import obtain_task
from mia_lightning import store_cli

FAST = ["logger=none", "report.plots=false"]


@pytest.fixture(scope="module")
def scored(tiny_task_dir, tmp_path_factory) -> Path:
    """A store with the tiny task and two trained shadows, and one run dir with every default attack."""
    store = tmp_path_factory.mktemp("scored_store")
    fresh_store(tiny_task_dir, store)
    run_pipeline(make_cfg(*TINY, *FAST, f"store.root={store}"), store / "run")
    return store


def pool(store: Path):
    task = obtain_task(open_run(make_cfg(*TINY, f"store.root={store}"), store / "read"))
    return task


def test_scores_csv_has_every_pool_id_once_and_every_attack(scored):
    task = pool(scored)
    metrics = json.loads((scored / "run" / "metrics.json").read_text())
    with open(scored / "run" / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = list(metrics["attacks"])
    assert list(rows[0]) == ["id", "split", "membership", *names]
    assert sorted(int(r["id"]) for r in rows) == sorted(task.pool_ids.tolist())
    assert len({r["id"] for r in rows}) == len(rows) == task.pool_size
    pub = len(task.pub)
    assert [r["split"] for r in rows] == ["pub"] * pub + ["priv"] * len(task.priv)
    assert [int(r["membership"]) for r in rows[:pub]] == task.pub.membership.tolist()
    assert all(r["membership"] == "" for r in rows[pub:])  # the hidden truth is never written
    saved = read_scores(scored / "run" / "scores.pt")
    assert torch.equal(saved["ids"], task.pool_ids)
    for name in names:  # the CSV gives back the exact float64 scores
        assert torch.equal(torch.tensor([float(r[name]) for r in rows], dtype=torch.float64), saved[name]), name
    assert set(names) >= {"calibrated_loss", "attack_r", "base", "ensemble", "lira_online"}


def test_metrics_json_has_intervals_for_every_attack(scored):
    metrics = json.loads((scored / "run" / "metrics.json").read_text())
    boot = metrics["bootstrap"]
    assert boot["resamples"] == 1000 and boot["negatives"] == 80  # priv: 80 non-members
    assert boot["measurable"] == {"auc": True, "tpr@0.05": True, "tpr@0.01": False, "tpr@0.001": False}
    for section, ci in (("attacks", metrics["ci"]), ("attacks_pub", metrics["ci_pub"])):
        assert set(ci) == set(metrics[section])
        for name, row in ci.items():
            low, high = row["auc"]
            assert low <= metrics[section][name]["auc"] <= high, (section, name)
    assert metrics["ci"]["lira_online"]["tpr@0.01"] is None  # 1/80 > 1%: not measurable, not 0.0
    assert metrics["paired"]["reference"] == "lira_online"
    row = metrics["paired"]["attacks"]["rmia"]["auc"]
    assert row["ci"][0] <= row["diff"] <= row["ci"][1]
    assert metrics["paired"]["attacks"]["rmia"]["tpr@0.001"] is None
    saved = safe_torch_load(scored / "run" / "bootstrap.pt")
    assert saved["replicates"].shape == (len(metrics["attacks"]), 4, 1000)


def test_summarize_compare_reads_the_paired_bootstrap(scored, capsys):
    from mia_lightning.report.summarize import main

    result = paired(scored / "run", "base", "lira_online")
    metrics = json.loads((scored / "run" / "metrics.json").read_text())
    assert result["auc"]["ci"] == metrics["paired"]["attacks"]["base"]["auc"]["ci"]
    assert result["tpr@0.01"]["verdict"] == "not measurable"
    main([str(scored / "run"), "--compare", "base,lira_online"])
    out = capsys.readouterr().out
    assert "base - lira_online: paired bootstrap" in out and "not measurable" in out
    with pytest.raises(SystemExit) as exit_info:
        main([str(scored / "run"), "--compare", "base,lira_onlin"])
    assert exit_info.value.code == 2 and "lira_onlin is not in" in capsys.readouterr().err


def test_stage_attacks_rewrites_the_scores(scored, tmp_path):
    run_dir = tmp_path / "rerun"
    shutil.copytree(scored / "run", run_dir)
    run_pipeline(make_cfg(*TINY, *FAST, f"store.root={scored}", "stage=attacks",
                          "attack.names=[loss,lira_online]"), run_dir)
    header = (run_dir / "scores.csv").read_text().splitlines()[0]
    assert header == "id,split,membership,loss,lira_online"
    assert torch.equal(read_scores(run_dir / "scores.pt")["lira_online"],
                       read_scores(scored / "run" / "scores.pt")["lira_online"])


def test_lira_export_then_import_gives_bit_identical_scores(scored, tmp_path, capsys):
    exported = tmp_path / "lira"
    store_cli.main(["export", "--format", "lira", str(exported), *TINY, f"store.root={scored}"])
    models = sorted((exported / "shadows").iterdir())
    assert [m.name for m in models] == ["experiment-000", "experiment-001"]
    logits = np.load(models[0] / "logits.npy", allow_pickle=False)
    assert logits.shape == (320, 2, 10) and logits.dtype == np.float32  # [N, A, C]
    assert np.load(models[0] / "keep.npy", allow_pickle=False).dtype == np.bool_
    # what the LiRA tools read: every point IN one of the two complementary shadows
    lira = read_lira(exported / "shadows", 320, 10)
    assert (lira.keep.sum(0) == 1).all()
    store_cli.main(["import", "--format", "lira", str(exported), "--name", "rt", *TINY, f"store.root={scored}"])
    hint = capsys.readouterr().out.split("attack it with: ", 1)[1].split()  # the command to run next, as printed
    assert hint[:4] == ["mia", "store.entry=rt", "stage=attacks", *TINY[:1]] and f"store.root={scored}" in hint
    run_pipeline(make_cfg(*TINY, *FAST, f"store.root={scored}", "stage=attacks", "store.entry=rt"),
                 tmp_path / "imported_run")
    before, after = read_scores(scored / "run" / "scores.pt"), read_scores(tmp_path / "imported_run" / "scores.pt")
    assert list(before) == list(after)
    for name in before:
        assert torch.equal(before[name], after[name]), name  # bit-identical, the master MLP included
    # a second import of the same name is refused; --replace replaces it
    with pytest.raises(SystemExit) as exit_info:
        store_cli.main(["import", str(exported), "--name", "rt", *TINY, f"store.root={scored}"])
    assert exit_info.value.code == 2 and "exists" in capsys.readouterr().err
    store_cli.main(["import", str(exported), "--name", "rt", "--replace", *TINY, f"store.root={scored}"])


def test_import_reorders_rows_by_ids_and_checks_labels(scored, tmp_path):
    task = pool(scored)
    shadow_logits = torch.randn(2, 320, 1, 10)
    keep = torch.stack([torch.arange(320) % 2 == 0, torch.arange(320) % 2 == 1])
    order = torch.randperm(320, generator=torch.Generator().manual_seed(0))  # row r is pool point order[r]
    source = tmp_path / "shuffled"
    write_lira(source, shadow_logits[:, order], keep[:, order])
    save_npy(source / "ids.npy", task.pool_ids[order].numpy())
    save_npy(source / "labels.npy", task.pool_labels[order].numpy())
    entry = store_cli.import_lira(source, "shuffled", None, [*TINY, f"store.root={scored}"], replace=False)
    assert torch.equal(safe_torch_load(entry / "keep.pt"), keep)
    from mia_lightning.logits.logits_file import read_logits

    assert torch.equal(read_logits(entry / "shadow_001" / "logits.pt")["identity"], shadow_logits[1, :, 0])
    save_npy(source / "labels.npy", (task.pool_labels[order].numpy() + 1) % 10)
    with pytest.raises(MiaError, match="labels.npy: differs from the task's labels"):
        store_cli.import_lira(source, "wrong", None, [*TINY, f"store.root={scored}"], replace=False)


@pytest.mark.parametrize("fault, message", [
    ("classes", "9 classes, the task has 10"), ("points", "cover 300 points, the task has 320"),
    ("nan", "NaN or infinite"), ("keep", "keep has shape"), ("object", "refused to load"),
    ("queries", "2 queries, expected 1"),
])
def test_lira_layout_refuses_bad_shadows_with_one_line(tmp_path, fault, message):
    logits, keep = torch.randn(2, 320, 1, 10), torch.rand(2, 320) < 0.5
    write_lira(tmp_path, logits, keep)
    bad = tmp_path / "experiment-001"
    if fault == "classes":
        save_npy(bad / "logits.npy", np.zeros((320, 1, 9), np.float32))
    elif fault == "points":
        save_npy(bad / "logits.npy", np.zeros((300, 1, 10), np.float32))
    elif fault == "nan":
        array = np.zeros((320, 1, 10), np.float32)
        array[3, 0, 2] = np.nan
        save_npy(bad / "logits.npy", array)
    elif fault == "keep":
        save_npy(bad / "keep.npy", np.zeros(319, np.bool_))
    elif fault == "object":
        np.save(bad / "keep.npy", np.array([{"x": 1}] * 320, dtype=object), allow_pickle=True)
    else:
        save_npy(bad / "logits.npy", np.zeros((320, 2, 10), np.float32))
    with pytest.raises(MiaError, match=message) as error:
        read_lira(tmp_path, 320, 10)
    assert "\n" not in str(error.value) and "experiment-001" in str(error.value)


def test_original_layout_logits_per_epoch_are_read(tmp_path):
    model = tmp_path / "experiment-7_16"
    (model / "logits").mkdir(parents=True)
    save_npy(model / "keep.npy", np.arange(40) % 2 == 0)
    save_npy(model / "logits" / "0000000010.npy", np.zeros((40, 1, 2, 3), np.float32))
    save_npy(model / "logits" / "0000000100.npy", np.ones((40, 1, 2, 3), np.float32))  # the newest
    lira = read_lira(tmp_path, 40, 3)
    assert lira.logits.shape == (1, 40, 2, 3) and (lira.logits == 1).all()


def test_imported_entries_refuse_what_they_cannot_give(scored, tmp_path):
    with pytest.raises(MiaError, match="store.entry=nope: no complete imported entry"):
        run_pipeline(make_cfg(*TINY, *FAST, f"store.root={scored}", "stage=attacks", "store.entry=nope"),
                     tmp_path / "run")
    write_lira(tmp_path / "one_query", torch.randn(2, 320, 1, 10), torch.rand(2, 320) < 0.5)
    store_cli.import_lira(tmp_path / "one_query", "one_query", None, [*TINY, f"store.root={scored}"], replace=False)
    with pytest.raises(MiaError, match=r"holds the queries \['identity'\]"):  # TINY asks for identity and mirror
        run_pipeline(make_cfg(*TINY, *FAST, f"store.root={scored}", "stage=attacks", "store.entry=one_query"),
                     tmp_path / "run")
    with pytest.raises(MiaError, match="holds 2 shadows; set shadow.count"):
        run_pipeline(make_cfg(*TINY, *FAST, f"store.root={scored}", "stage=attacks", "store.entry=one_query",
                              "attack.queries=[identity]", "shadow.count=4"), tmp_path / "run")


def _link_big_files(source: str, target: str) -> None:
    """copytree's copy: weights and checkpoints hard-linked (a removal here leaves the original),
    small files (history.jsonl, done) copied."""
    import os

    if os.path.getsize(source) > 1_000_000:
        os.link(source, target)
    else:
        shutil.copy2(source, target)


def test_prune_removes_only_finished_resume_checkpoints_and_the_store_still_serves(scored, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(scored, store, copy_function=_link_big_files, ignore=shutil.ignore_patterns("run", "imported-*"))
    shadows = sorted(store.glob("*/*/shadow_*"))
    assert len(shadows) == 2 and all((s / "checkpoints" / "last.ckpt").is_file() for s in shadows)
    (target_checkpoint,) = store.glob("tasks/*/target/checkpoints/last.ckpt")
    unfinished = shadows[1]
    (unfinished / "done").rename(unfinished / "done.away")  # as if killed after its last epoch
    sizes = sum(s.stat().st_size for s in (shadows[0] / "checkpoints" / "last.ckpt", target_checkpoint))

    store_cli.main(["prune", str(store), "--dry-run"])
    assert capsys.readouterr().out.strip() == (f"would remove 2 resume checkpoints of finished models under {store} "
                                               f"({sizes / 1e9:.2f} GB); kept 1 of unfinished models")
    assert (shadows[0] / "checkpoints" / "last.ckpt").is_file() and target_checkpoint.is_file()
    store_cli.main(["prune", str(store)])
    assert capsys.readouterr().out.startswith("removed 2 resume checkpoints")
    assert not (shadows[0] / "checkpoints").exists() and not target_checkpoint.exists()
    assert (unfinished / "checkpoints" / "last.ckpt").is_file()  # its resume point stays
    assert (shadows[0] / "weights.pt").is_file() and (shadows[0] / "logits.pt").is_file()
    assert all((scored / s.relative_to(store) / "checkpoints" / "last.ckpt").is_file() for s in shadows)  # the originals

    (unfinished / "done.away").rename(unfinished / "done")
    starts = [len(fit_starts(s)) for s in shadows]
    run_pipeline(make_cfg(*TINY, *FAST, f"store.root={store}", "attack.names=[lira_online,rmia]"), tmp_path / "run")
    assert [len(fit_starts(s)) for s in shadows] == starts  # nothing retrained
    before, after = read_scores(scored / "run" / "scores.pt"), read_scores(tmp_path / "run" / "scores.pt")
    for name in ("lira_online", "rmia"):
        assert torch.equal(before[name], after[name]), name

    for argv, message in ((["prune", str(tmp_path / "nowhere")], "nowhere: not a directory"),
                          (["prune", str(store), "task=tml25"], "takes the store's root alone")):
        with pytest.raises(SystemExit) as exit_info:
            store_cli.main(argv)
        error = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in error and error.count("\n") == 1
