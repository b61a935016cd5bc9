"""What a run shows in TensorBoard's HParams tab: a few columns that matter, with the values used.

TensorBoard builds one table from every run under `--logdir`, puts the columns whose
values differ first (then by name) and ticks only the first five. Logging the whole
flattened config (~90 keys) buried the swept key under `attack.rmia.num_z`,
`experiment_name` and `master.*` as soon as the logdir spanned two sweeps. So a run logs:

- the keys of its sweep (Hydra's sweep syntax, `hydra.sweeper.params`) and the keys set on
  its command line: what the person running it chose to vary or change;
- a handful of settings that say what the run was: `experiment`, `task`, `shadow.count`,
  `shadow.recipe` (the recipe the shadows were trained with, in words), `attack.queries`;

each with the value the run actually used where that differs from the config (RMIA's
`num_z` is capped by the known non-members, `attack.queries=auto` becomes the queries,
`shadow.recipe=auto` the recipe the search chose), from `metrics.json`. The whole config
stays in the Text tab. Each run is named, in the table's "Trial ID" column, by what
distinguishes it ("count=4 #2 12-01 19:22:33", "12-01 19:22:33 default") rather than by its path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

CORE = ("experiment", "task", "shadow.count", "shadow.recipe", "attack.queries")
# command-line keys that are paths or plumbing, not settings worth a column
SKIP_PREFIXES = ("hydra", "store.", "task.pub", "task.priv", "task.target", "task.truth", "task.data_root",
                 "trainer.max_memory_gb", "trainer.enable_progress_bar", "trainer.log_every_n_steps", "stage")
RECIPE_KEYS = ("epochs", "batch_size", "optimizer.", "augment.", "label_smoothing")
METRICS = ("tpr@0.05", "tpr@0.01", "auc")  # of the submitted attack; every attack's tpr@0.05 too


@dataclass(frozen=True)
class Command:
    """How the run was started: its command-line overrides and the keys its sweep varies."""

    overrides: tuple[str, ...] = ()
    swept: frozenset[str] = field(default_factory=frozenset)
    job: str | None = None  # the multirun job number
    choices: tuple[tuple[str, str], ...] = ()  # the config groups' chosen options (trainer=gpu, ...)

    @classmethod
    def of_hydra(cls) -> "Command":
        """The running Hydra job's command (empty outside one, e.g. in tests that call log_run)."""
        try:
            from hydra.core.hydra_config import HydraConfig

            from mia_lightning.config.resolvers import swept_keys

            hydra_cfg = HydraConfig.get()
            multirun = str(hydra_cfg.mode).endswith("MULTIRUN")
            swept = swept_keys(Path(str(hydra_cfg.sweep.dir)), hydra_cfg.sweeper.get("params")) if multirun else set()
            choices = tuple((str(k), str(v)) for k, v in hydra_cfg.runtime.choices.items() if not str(k).startswith("hydra"))
            return cls(tuple(hydra_cfg.overrides.task), frozenset(swept),
                       str(hydra_cfg.job.num) if multirun else None, choices)
        except Exception:  # no Hydra job
            return cls()

    def keys(self) -> list[str]:
        """Swept keys first, then the other keys set on the command line, in their order."""
        from mia_lightning.config.resolvers import override_key, parse_overrides

        given = [override_key(o) for o in parse_overrides(list(self.overrides))]
        ordered = [*sorted(self.swept), *[key for key in given if key not in self.swept]]
        return [key for key in dict.fromkeys(ordered) if not key.startswith(SKIP_PREFIXES)]


def _plain(value: Any) -> bool | int | float | str:
    """A value TensorBoard's HParams can hold (lists joined, None as "none")."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if value is None:
        return "none"
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _lookup(tree: Any, dotted: str) -> Any:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def used_value(key: str, config: dict[str, Any], metrics: dict[str, Any], choices: dict[str, str]) -> Any:
    """The value of `key` this run used: from metrics.json where the run decided it, else the config."""
    recipe = metrics.get("recipe") or {}
    if key == "experiment":
        return config.get("experiment_name")
    if key == "task":
        return metrics.get("task")
    if key == "shadow.count":
        return metrics.get("shadows", _lookup(config, key))
    if key == "shadow.recipe":
        return f"{recipe.get('mode', 'given')}: {recipe['describe']}" if recipe.get("describe") else \
            _lookup(config, key)
    if key == "attack.queries" and metrics.get("queries"):
        return metrics["queries"]
    if key.startswith("shadow.") and recipe.get("chosen") and key[7:].startswith(RECIPE_KEYS):
        chosen = _lookup(recipe["chosen"], key[7:])  # shadow.recipe=auto: what the search chose
        if chosen is not None:
            return chosen
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "attack":  # e.g. attack.rmia.num_z: the attack's notes say what it used
        for name, notes in (metrics.get("notes") or {}).items():
            if name.startswith(parts[1]) and isinstance(notes, dict) and parts[2] in notes:
                return notes[parts[2]]
    if "." not in key and key in choices:  # a group chosen on the command line: trainer=gpu, +task/train=adam15
        return choices[key]
    return _lookup(config, key)


def run_hparams(config: Any, metrics: dict[str, Any], command: Command) -> dict[str, bool | int | float | str]:
    """The HParams columns of one run: swept and command-line keys first, then CORE, values as used."""
    tree = asdict(config) if is_dataclass(config) else OmegaConf.to_container(config, resolve=True)
    given = command.keys()
    keys = [*given, *[key for key in CORE if key not in given]]
    return {key: _plain(used_value(key, tree, metrics, dict(command.choices))) for key in keys}


def run_name(params: dict[str, Any], command: Command, run_dir: Path) -> str:
    """The Trial ID, whose column TensorBoard cuts after ~14 characters, so the distinguishing
    part comes first: a sweep job's swept values by their last key part ("count=4 #2 12-02 00:45:24",
    full keys where two share a last part), a single run its time ("12-02 00:44:52 default")."""
    swept = sorted(key for key in command.swept if key in params)
    leaves = [key.rsplit(".", 1)[-1] for key in swept]
    names = leaves if len(set(leaves)) == len(leaves) else swept
    label = ",".join(f"{name}={params[key]}" for name, key in zip(names, swept))
    if command.job is not None:  # a job dir in <sweep dir>/<job>_...
        return f"{label or 'job'} #{command.job} {_when(run_dir.parent)}"
    return f"{_when(run_dir)} {params.get('experiment', '')}".strip()


def _when(directory: Path) -> str:
    """"12-02 00:44:52" for Hydra's <YYYY-MM-DD>/<HH-MM-SS> dirs, else the dir's own name."""
    day, time_ = directory.parent.name, directory.name
    if len(day) == 10 and day[4] == day[7] == "-" and len(time_) == 8 and time_[2] == time_[5] == "-":
        return f"{day[5:]} {time_.replace('-', ':')}"
    return directory.name


def run_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The HParams metric columns: the submitted attack's headline numbers and every attack's
    TPR@5%FPR (the assignment's metric); the rest is in the Text tab's table."""
    submitted = metrics["attacks"][metrics["submit"]]
    values = {f"hparams/best/{key}": float(submitted[key]) for key in METRICS}
    values.update({f"hparams/{name}/tpr@0.05": float(row["tpr@0.05"]) for name, row in metrics["attacks"].items()})
    return values


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """Every attack's metrics and the model report, as the Markdown tables of the Text tab."""
    lines = ["| attack | AUC | TPR@5%FPR | TPR@1%FPR | TPR@0.1%FPR |", "|---|---|---|---|---|"]
    for name, row in sorted(metrics["attacks"].items(), key=lambda item: -item[1]["tpr@0.05"]):
        mark = " (submitted)" if name == metrics["submit"] else ""
        lines.append(f"| {name}{mark} | {row['auc']:.4f} | {row['tpr@0.05']:.4f} | {row['tpr@0.01']:.4f} "
                     f"| {row['tpr@0.001']:.4f} |")
    models = metrics.get("models") or {}
    rows = [("target", side, row) for side, row in (models.get("target") or {}).items()]
    rows += [("shadows", side, models["shadows"][side]) for side in ("in", "out") if side in (models.get("shadows") or {})]
    if rows:
        lines += ["", "| model | side | accuracy | median phi |", "|---|---|---|---|"]
        lines += [f"| {model} | {side} | {row['acc']:.3f} | {row['phi_median']:.2f} |" for model, side, row in rows]
    for warning in metrics.get("warnings") or []:
        lines += ["", f"warning: {warning}"]
    return "\n".join(lines)
