"""The model report: do the shadows behave like the target? And the warnings when they do not.

For the target, on pub: accuracy, mean loss and phi (mean and median) on pub's members and
on its non-members. For the shadows, the same on their IN and their OUT points (every pool
point), as the mean and the spread over shadows. A shadow recipe that matches the target
gives about the same numbers on both sides; one that does not shows it here first.

Warnings (each one line, in metrics.json `warnings` and on the terminal), with their
tolerances:
- shadows near chance: their mean OUT accuracy is within 0.05 of the majority-class rate;
- OUT accuracy off: |shadows' OUT accuracy - target's pub non-member accuracy| > 0.10 + 2 se;
- gap off: |shadows' IN-OUT accuracy gap - target's member/non-member gap| > 0.10 + 2 se, or
  the shadows' IN-OUT gap in median phi is outside [0.5, 2] x the target's;
  se is the standard error of the difference: the target's accuracies are binomial
  estimates on pub's members and non-members (a pub of 160 points moves its gap by ~0.05
  by chance alone), the shadows' the mean of `count` shadows. A fixed 0.10 alone warned
  about oracle shadows on small pubs; on a pub of 1,000 per side 2 se is ~0.03.
- an attack below chance: AUC < 0.5 on the labelled points it may be measured on (pub,
  through held-out folds for attacks trained there).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mia_lightning.attacks.signals import true_class_log_prob, true_class_margin

ACCURACY_TOLERANCE = 0.10
NOISE_WIDTHS = 2.0  # standard errors of the difference added to ACCURACY_TOLERANCE
CHANCE_MARGIN = 0.05
PHI_GAP_RATIO = (0.5, 2.0)


def side_stats(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """Accuracy, mean loss, mean and median phi of identity-query logits [M, C]."""
    if logits.shape[0] == 0:
        return {"acc": float("nan"), "loss": float("nan"), "phi": float("nan"), "phi_median": float("nan"), "points": 0}
    phi = true_class_margin(logits[:, None], labels)[:, 0]
    loss = -true_class_log_prob(logits[:, None], labels)[:, 0]
    return {"acc": float((logits.argmax(-1) == labels).double().mean()), "loss": float(loss.mean()),
            "phi": float(phi.mean()), "phi_median": float(phi.median()), "points": int(labels.numel())}


def _over_shadows(rows: list[dict[str, float]]) -> dict[str, Any]:
    keys = ("acc", "loss", "phi", "phi_median")
    out: dict[str, Any] = {}
    for key in keys:
        values = torch.tensor([row[key] for row in rows], dtype=torch.float64)
        out[key] = float(values.mean()) if values.numel() else float("nan")
        out[f"{key}_std"] = float(values.std(unbiased=False)) if values.numel() else float("nan")
    return out


def model_report(target_logits: Tensor, shadow_logits: Tensor, keep: Tensor, labels: Tensor, pub_size: int,
                 pub_member: Tensor) -> dict[str, Any]:
    """{"target": {member, non_member}, "shadows": {in, out, count}, "chance": majority rate} (identity query)."""
    pub_labels = labels[:pub_size]
    target = target_logits[:pub_size, 0]
    report: dict[str, Any] = {
        "target": {"member": side_stats(target[pub_member], pub_labels[pub_member]),
                   "non_member": side_stats(target[~pub_member], pub_labels[~pub_member])},
        "chance": float(torch.bincount(labels).max() / labels.numel()) if labels.numel() else 0.0,
        "shadows": {"count": int(shadow_logits.shape[0])},
    }
    if shadow_logits.shape[0]:
        rows_in = [side_stats(shadow_logits[k, keep[k], 0], labels[keep[k]]) for k in range(shadow_logits.shape[0])]
        rows_out = [side_stats(shadow_logits[k, ~keep[k], 0], labels[~keep[k]]) for k in range(shadow_logits.shape[0])]
        report["shadows"].update({"in": _over_shadows(rows_in), "out": _over_shadows(rows_out)})
    return report


def binomial_var(side: dict[str, float]) -> float:
    """The variance of an accuracy measured on `points` points (0 where there are none)."""
    acc, points = side["acc"], side.get("points", 0)
    return acc * (1 - acc) / points if points else 0.0


def mean_var(side: dict[str, float], count: int) -> float:
    """The variance of the shadows' mean accuracy: their spread over `count` shadows."""
    return side.get("acc_std", 0.0) ** 2 / count if count else 0.0


def tolerances(report: dict[str, Any]) -> tuple[float, float]:
    """(OUT accuracy, IN-OUT gap) tolerances: ACCURACY_TOLERANCE plus NOISE_WIDTHS standard
    errors of each difference, so that sampling noise alone does not read as a mismatch."""
    shadows, target, count = report["shadows"], report["target"], report["shadows"]["count"]
    out_var = binomial_var(target["non_member"]) + mean_var(shadows["out"], count)
    gap_var = out_var + binomial_var(target["member"]) + mean_var(shadows["in"], count)
    return (ACCURACY_TOLERANCE + NOISE_WIDTHS * out_var ** 0.5, ACCURACY_TOLERANCE + NOISE_WIDTHS * gap_var ** 0.5)


def model_warnings(report: dict[str, Any]) -> list[str]:
    """One sentence per mismatch between the shadows and the target (see the module's tolerances)."""
    shadows, target = report["shadows"], report["target"]
    if "out" not in shadows:
        return []
    out: list[str] = []
    s_in, s_out = shadows["in"]["acc"], shadows["out"]["acc"]
    t_in, t_out = target["member"]["acc"], target["non_member"]["acc"]
    out_tolerance, gap_tolerance = tolerances(report)
    hint = "their recipe differs from the target's; try shadow.recipe=auto (or a shadow recipe closer to the target's)"
    if s_out <= report["chance"] + CHANCE_MARGIN:
        out.append(f"shadows are near chance: their OUT accuracy is {s_out:.3f} (majority class {report['chance']:.3f}, "
                   f"the target's pub non-members {t_out:.3f}); they learned nothing: train them longer "
                   "(shadow.epochs) or use shadow.recipe=auto")
    elif abs(s_out - t_out) > out_tolerance:
        out.append(f"shadows' OUT accuracy {s_out:.3f} is far from the target's pub non-member accuracy {t_out:.3f} "
                   f"(tolerance {out_tolerance:.3f}: {ACCURACY_TOLERANCE} + {NOISE_WIDTHS:g} se): {hint}")
    if abs((s_in - s_out) - (t_in - t_out)) > gap_tolerance:
        out.append(f"shadows' IN-OUT accuracy gap {s_in - s_out:.3f} differs from the target's member/non-member "
                   f"gap {t_in - t_out:.3f} (tolerance {gap_tolerance:.3f}: {ACCURACY_TOLERANCE} + {NOISE_WIDTHS:g} se): "
                   f"{hint}")
    else:
        target_gap = target["member"]["phi_median"] - target["non_member"]["phi_median"]
        shadow_gap = shadows["in"]["phi_median"] - shadows["out"]["phi_median"]
        if target_gap > 0 and not PHI_GAP_RATIO[0] <= shadow_gap / target_gap <= PHI_GAP_RATIO[1]:
            out.append(f"shadows' IN-OUT gap in median phi {shadow_gap:.2f} is {shadow_gap / target_gap:.2f}x the "
                       f"target's member/non-member gap {target_gap:.2f} (tolerance {PHI_GAP_RATIO[0]}-"
                       f"{PHI_GAP_RATIO[1]}x): {hint}")
    return out


def attack_warnings(pub_metrics: dict[str, dict[str, float]]) -> list[str]:
    return [f"attack {name} scores below chance on pub (AUC {row['auc']:.3f} < 0.5): its signal points the wrong "
            "way for this target (shadows unlike the target?); it is never submitted"
            for name, row in pub_metrics.items() if row["auc"] < 0.5]
