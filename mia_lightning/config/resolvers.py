"""Hydra resolvers mia's config needs: `mia.subdir`, the readable name of a sweep job's dir.

    mia -m shadow.count=1,2,4,8,16              # job dirs: 0_shadow.count=1, 1_shadow.count=2, ...

Job directories are named `<job number>_<swept key>=<value>,...`: only the swept keys
appear — those given with sweep syntax on the command line (`a=1,2`, `range(...)`) or
listed in `hydra.sweeper.params` — lists are joined with `+`, and anything not
filesystem- and shell-safe becomes `_`. `mia-summarize` (report/summarize.py) reads the
same overrides back with `parse_overrides` and `format_value`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

MAX_NAME = 120  # characters of a job directory name before it is shortened with a hash
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,-]")




def format_value(value: Any) -> str:
    """A Hydra override value as it appears in a directory name (lists joined by `+`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "+".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}-{format_value(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def safe_name(text: str, limit: int = MAX_NAME) -> str:
    """Filesystem- and shell-safe: [A-Za-z0-9._+=,-] only, at most `limit` characters."""
    name = _UNSAFE.sub("_", text.replace("[", "").replace("]", "").replace("'", "").replace('"', ""))
    name = name.lstrip(".") or "_"
    if len(name) > limit:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9]}-{digest}"
    return name


def parse_overrides(lines: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = []
    for line in lines:
        try:
            out.extend(parser.parse_overrides([str(line)]))
        except Exception:  # an override this grammar cannot read (another Hydra version): skip it
            continue
    return out


def override_key(override: Any) -> str:
    return str(override.key_or_group).lstrip("+~")


def swept_keys(sweep_dir: Path | None, sweeper_params: Any) -> set[str]:
    """Keys a multirun sweeps: sweep syntax on its command line (from `multirun.yaml`,
    which Hydra's basic sweeper writes into the sweep dir) and `hydra.sweeper.params`."""
    from omegaconf import OmegaConf

    keys: set[str] = set()
    if sweeper_params:
        for key, value in dict(sweeper_params).items():
            parsed = parse_overrides([f"{key}={value}"])
            if not parsed or parsed[0].is_sweep_override():  # a fixed value there sweeps nothing
                keys.add(str(key).lstrip("+~"))
    if sweep_dir is not None and (sweep_dir / "multirun.yaml").is_file():
        try:
            saved = OmegaConf.load(sweep_dir / "multirun.yaml")
            lines = list(OmegaConf.select(saved, "hydra.overrides.task", default=[]) or [])
        except Exception:  # being rewritten by a relaunch of the same sweep
            lines = []
        keys.update(override_key(o) for o in parse_overrides(lines) if o.is_sweep_override())
    return keys


def job_dirname(num: Any) -> str:
    """The `mia.subdir` resolver: `<num>_<swept overrides>` of the running Hydra job."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
        sweep_dir = Path(str(hydra_cfg.sweep.dir))
        keys = swept_keys(sweep_dir, hydra_cfg.sweeper.get("params"))
        overrides = parse_overrides(list(hydra_cfg.overrides.task))
    except Exception:  # no Hydra job (e.g. `--cfg hydra --resolve`): just the number
        return str(num)
    last = {override_key(o): format_value(o.value()) for o in overrides if override_key(o) in keys and not o.is_sweep_override()}
    chosen = sorted(last.items())  # a key given twice: its last value, as Hydra applies it
    if not chosen:
        return str(num)
    name = ",".join(f"{key}={value}" for key, value in chosen)
    leaves = [key.rsplit(".", 1)[-1] for key, _ in chosen]
    if len(safe_name(name, limit=10**6)) > MAX_NAME and len(set(leaves)) == len(leaves):
        name = ",".join(f"{leaf}={value}" for leaf, (_, value) in zip(leaves, chosen))  # long: leaf keys only
    return f"{num}_{safe_name(name)}"


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("mia.subdir"):
        OmegaConf.register_new_resolver("mia.subdir", job_dirname)


