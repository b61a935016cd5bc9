"""scripts/study_recipe_mismatch.py on job dirs laid out as `mia -m experiment=study_recipe_mismatch`
writes them: one row per target, the issue's ratio computed from the calibrated attacks only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def job(root: Path, name: str, overrides: list[str], attacks: dict[str, tuple[float, float, float]],
        recipe: dict | None = None) -> None:
    (root / name / ".hydra").mkdir(parents=True)
    (root / name / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    metrics = {"attacks": {a: {"tpr@0.05": t5, "tpr@0.01": t1, "auc": auc} for a, (t5, t1, auc) in attacks.items()},
               "submit": next(iter(attacks)), "warnings": [], "recipe": recipe}
    (root / name / "metrics.json").write_text(json.dumps(metrics))


def test_the_study_table_compares_auto_plus_calibrated_with_the_oracle(tmp_path):
    sweep = tmp_path / "sweep"
    job(sweep, "0_given", ["+task/train=adam15", "shadow.recipe=given"],
        {"lira_online": (0.20, 0.10, 0.70), "stack": (0.22, 0.11, 0.71)})
    job(sweep, "1_oracle", ["+task/train=adam15", "shadow.recipe=oracle"],
        {"lira_online": (0.30, 0.20, 0.75), "base": (0.28, 0.15, 0.74), "stack": (0.40, 0.30, 0.80)})
    job(sweep, "2_auto", ["+task/train=adam15", "shadow.recipe=auto"],
        {"ensemble": (0.35, 0.25, 0.76), "lira_calibrated": (0.285, 0.19, 0.74)},
        recipe={"describe": "adam lr 0.001", "candidates": 16, "seconds": 3000.0})
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "study_recipe_mismatch.py"), str(sweep),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    table = (tmp_path / "out" / "study_recipe_mismatch.md").read_text().splitlines()
    assert len(table) == 3 and table[2].startswith("| adam15 |")
    cells = [c.strip() for c in table[2].split("|")[1:-1]]
    assert cells[1] == "0.200 / 0.100 / 0.700 (lira_online)" and cells[2] == "0.220 / 0.110 / 0.710 (stack)"
    assert cells[3] == "0.300 / 0.200 / 0.750 (lira_online)"  # the oracle's stack is calibrated: not its bar
    assert cells[4].endswith("(ensemble)") and cells[5].endswith("(lira_calibrated)")
    assert cells[6] == "0.95x, 0.95x"  # 0.285 / 0.30 and 0.19 / 0.20: the auto ensemble does not count
    assert cells[7] == "adam lr 0.001 (16 candidates, 3000 s)"
    assert cells[8] == "ensemble: 0.350 / 0.250 / 0.760"  # what the auto run submitted (chosen on pub)
    assert (tmp_path / "out" / "study_recipe_mismatch.png").stat().st_size > 1000
    assert not list((tmp_path / "out").glob(".tmp-*"))
