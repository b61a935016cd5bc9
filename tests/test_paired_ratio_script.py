"""scripts/paired_ratio.py: two runs scored on one shared set of resamples, so runs whose own
bootstrap.pt files were drawn with different seeds can still be compared pair by pair."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from conftest import REPO
from mia_lightning.metrics.bootstrap import METRICS, bootstrap, percentile_interval
from mia_lightning.metrics.roc import summarize

SCRIPT = REPO / "scripts" / "paired_ratio.py"


def scores_file(run: Path, ids: torch.Tensor, scores: dict[str, torch.Tensor], pub: int) -> None:
    """A run dir's scores.pt as the attack stage writes it: pub points first, then priv."""
    run.mkdir(parents=True)
    is_pub = torch.arange(ids.numel()) < pub
    torch.save({"ids": ids, "is_pub": is_pub, "membership": torch.where(is_pub, 1, -1), "attacks": list(scores),
                "scores": torch.stack(list(scores.values()), 1)}, run / "scores.pt")


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_the_ratio_and_its_interval_come_from_one_set_of_resamples_of_priv(tmp_path):
    gen = torch.Generator().manual_seed(0)
    pub, priv = 50, 2000
    ids = torch.arange(1000, 1000 + pub + priv)
    member = torch.rand(priv, generator=gen) < 0.5
    torch.save({"ids": ids[pub:], "membership": member.to(torch.int64)}, tmp_path / "truth.pt")
    strong = member.double() + torch.randn(priv, generator=gen, dtype=torch.float64)
    weak = 0.5 * member.double() + torch.randn(priv, generator=gen, dtype=torch.float64)
    filler = torch.zeros(pub, dtype=torch.float64)  # pub scores must not enter the priv figures
    scores_file(tmp_path / "a", ids, {"other": torch.cat([filler, weak]), "mine": torch.cat([filler + 9, strong])}, pub)
    scores_file(tmp_path / "b", ids, {"theirs": torch.cat([filler - 9, weak])}, pub)
    proc = run_script(f"{tmp_path / 'a'}:mine", f"{tmp_path / 'b'}:theirs", "--truth", str(tmp_path / "truth.pt"),
                      "--resamples", "200", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    rep_a, rep_b = (bootstrap(s, member, resamples=200, seed=3)[0] for s in (strong, weak))
    point_a, point_b = summarize(strong, member), summarize(weak, member)
    expected = []
    for metric in ("tpr@0.05", "tpr@0.01"):
        row = METRICS.index(metric)
        low, high = percentile_interval(rep_a[row] / rep_b[row].clamp_min(1e-9)).tolist()
        expected.append(f"{metric}: {point_a[metric]:.3f} / {point_b[metric]:.3f} = "
                        f"{point_a[metric] / point_b[metric]:.2f}x [{low:.2f}, {high:.2f}]")
    assert proc.stdout.splitlines() == expected
    assert point_a["tpr@0.05"] > point_b["tpr@0.05"]  # the stronger attack's ratio is above 1


def test_runs_on_other_points_a_missing_attack_or_a_malformed_file_are_one_line_exit_2(tmp_path):
    ids = torch.arange(20)
    torch.save({"ids": ids[10:], "membership": torch.arange(10) % 2}, tmp_path / "truth.pt")
    scores_file(tmp_path / "a", ids, {"lira": torch.rand(20, dtype=torch.float64)}, 10)
    scores_file(tmp_path / "b", ids + 100, {"lira": torch.rand(20, dtype=torch.float64)}, 10)
    (tmp_path / "old").mkdir()  # a scores.pt without is_pub / membership (hand-made, or another tool's)
    torch.save({"ids": ids, "attacks": ["lira"], "scores": torch.rand(20, 1, dtype=torch.float64)},
               tmp_path / "old" / "scores.pt")
    (tmp_path / "short").mkdir()  # one membership entry missing
    torch.save({"ids": ids, "is_pub": ids < 10, "membership": torch.zeros(19, dtype=torch.int8), "attacks": ["lira"],
                "scores": torch.rand(20, 1, dtype=torch.float64)}, tmp_path / "short" / "scores.pt")
    for a, b, needle in ((f"{tmp_path / 'a'}:lira", f"{tmp_path / 'b'}:lira", "different private points"),
                         (f"{tmp_path / 'a'}:rmia", f"{tmp_path / 'a'}:lira", "a/scores.pt: no attack 'rmia'"),
                         (f"{tmp_path / 'old'}:lira", f"{tmp_path / 'a'}:lira", "old/scores.pt: not a scores file"),
                         (f"{tmp_path / 'short'}:lira", f"{tmp_path / 'a'}:lira", "short/scores.pt: is_pub / membership")):
        proc = run_script(a, b, "--truth", str(tmp_path / "truth.pt"))
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr


def test_split_pub_scores_the_public_points_against_their_own_membership_without_truth(tmp_path):
    gen = torch.Generator().manual_seed(1)
    pub, priv = 2000, 40
    ids = torch.arange(pub + priv)
    member = torch.rand(pub, generator=gen) < 0.5
    strong = member.double() + torch.randn(pub, generator=gen, dtype=torch.float64)
    weak = 0.5 * member.double() + torch.randn(pub, generator=gen, dtype=torch.float64)
    filler = torch.zeros(priv, dtype=torch.float64)  # priv scores must not enter the pub figures
    for run, scores in (("a", torch.cat([strong, filler + 9])), ("b", torch.cat([weak, filler - 9]))):
        (tmp_path / run).mkdir()
        is_pub = torch.arange(pub + priv) < pub
        torch.save({"ids": ids, "is_pub": is_pub, "membership": torch.cat([member.long(), torch.full((priv,), -1)]),
                    "attacks": ["lira"], "scores": scores.unsqueeze(1)}, tmp_path / run / "scores.pt")
    proc = run_script(f"{tmp_path / 'a'}:lira", f"{tmp_path / 'b'}:lira", "--split", "pub",
                      "--resamples", "200", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    point_a, point_b = summarize(strong, member), summarize(weak, member)
    rep_a, rep_b = (bootstrap(s, member, resamples=200, seed=3)[0] for s in (strong, weak))
    row = METRICS.index("tpr@0.05")
    low, high = percentile_interval(rep_a[row] / rep_b[row].clamp_min(1e-9)).tolist()
    assert proc.stdout.splitlines()[0] == (f"tpr@0.05: {point_a['tpr@0.05']:.3f} / {point_b['tpr@0.05']:.3f} = "
                                           f"{point_a['tpr@0.05'] / point_b['tpr@0.05']:.2f}x [{low:.2f}, {high:.2f}]")
    proc = run_script(f"{tmp_path / 'a'}:lira", f"{tmp_path / 'b'}:lira")  # priv, the default, needs the truth
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "--truth is required" in lines[0], proc.stderr
