"""The `mia` command: a Hydra app over `conf/config.yaml`.

Errors a user can fix (bad config key, wrong file, missing dataset) are printed as one
line, `mia: error: ...`, and exit with status 2; set MIA_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mia_lightning.config.register import register
from mia_lightning.errors import MiaError
from mia_lightning.utils.quiet import quiet_libraries

register()


def _config_dir() -> str:
    """The repo's `conf/` in a checkout (editable install); the copy shipped inside the
    package (`mia_lightning/_conf`, see pyproject.toml) in a wheel."""
    checkout = Path(__file__).resolve().parent.parent / "conf"
    return str(checkout if (checkout / "config.yaml").is_file() else Path(__file__).resolve().parent / "_conf")


CONFIG_DIR = _config_dir()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    from mia_lightning.pipeline import run_pipeline

    quiet_libraries()
    _warn_about_choices(cfg)
    try:
        return run_pipeline(cfg, Path(HydraConfig.get().runtime.output_dir))
    except MiaError as error:  # exit here: Hydra would print a job banner around it
        if _debug():
            raise
        print(f"mia: error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as error:
        # Lightning turns SIGTERM during training into SystemExit() (status 0): a preempted
        # cluster job would look successful. Report it as the signal it was (128 + 15), here
        # in the task function, which submitit's jobs call directly (they never reach `main`).
        if type(error).__name__ != "SIGTERMException":
            raise
        print("mia: terminated (SIGTERM); rerun the same command to resume", file=sys.stderr)
        sys.exit(143)


def _warn_about_choices(cfg: DictConfig) -> None:
    """An experiment that sets task.* keys over the task chosen on the command line (config/choices.py)."""
    from mia_lightning.config.choices import task_overridden

    hydra_cfg = HydraConfig.get()
    line = task_overridden(cfg, list(hydra_cfg.overrides.task), hydra_cfg.runtime.choices.get("experiment"))
    if line:
        logging.getLogger("mia").warning(line)


def _debug() -> bool:
    return os.environ.get("MIA_DEBUG", "") not in ("", "0")


def one_line(error: BaseException) -> str:
    """Hydra and OmegaConf errors span several lines; the user gets them folded into one
    (and the composition errors that have a clearer wording, config/explain.py, in that)."""
    from mia_lightning.config.explain import explain

    explained = explain(error)
    if explained:
        return explained
    parts = [line.strip() for line in str(error).splitlines() if line.strip()]
    parts = [p for p in parts if not p.startswith(("Set the environment variable HYDRA_FULL_ERROR",
                                                    "object_type=", "reference_type="))]
    text = "; ".join(parts) or type(error).__name__
    cause = error.__cause__
    if cause is not None and str(cause).strip() and str(cause).splitlines()[0].strip() not in text:
        text += f" ({one_line(cause)})"
    return text


def main() -> None:
    """Console entry point."""
    debug = _debug()
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us; we print them as one line
    _resolve_printed_config(sys.argv)
    try:
        hydra_main()
    except MiaError as error:
        if debug:
            raise
        print(f"mia: error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("mia: interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # config composition and override errors from Hydra/OmegaConf
        if debug or not (_is_config_error(error) or _is_usage_error(error)):
            raise
        print(f"mia: error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)


def _resolve_printed_config(argv: list[str]) -> None:
    """`mia --cfg job` prints the config with its interpolations resolved (the store root as
    the path it is, not `${oc.env:MIA_STORE,outputs/store}`), as if `--resolve` were given."""
    if any(arg in ("--cfg", "-c") or arg.startswith("--cfg=") for arg in argv) and "--resolve" not in argv:
        argv.append("--resolve")


def _is_usage_error(error: BaseException) -> bool:
    """Hydra's own command-line complaints (e.g. `--cfg job -m`), raised as plain ValueErrors."""
    return isinstance(error, ValueError) and str(error).startswith("Only one of --run, --multirun")


def _is_config_error(error: BaseException) -> bool:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(error, (HydraException, OmegaConfBaseException)) or isinstance(
        error.__cause__, (HydraException, OmegaConfBaseException, MiaError)
    )


if __name__ == "__main__":
    main()
