"""Checks of a SLURM launch before and at `sbatch`: the mistakes a first cluster run makes.

Found on a real cluster: `trainer=gpu` with `gpus_per_node: 1` on CPU nodes ends in
`sbatch: error: Invalid generic resource (gres) specification`, the preset's 8 CPUs / 32 GB
on small nodes in `Requested node configuration is not available`. Both are turned into one
line naming the keys to change; a GPU trainer on jobs without a GPU is stopped before
anything is submitted.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from mia_lightning.errors import MiaError

CPU_RECIPE = "on CPU nodes use `hydra/launcher=slurm_cpu trainer=cpu`"


def shown(value: Any) -> str:
    """A launcher value as the user writes it on the command line."""
    return "null" if value is None else str(value)


def requests_gpu(params: dict[str, Any]) -> bool:
    """Whether the sbatch parameters ask for at least one GPU per job."""
    gres = str(params.get("gres") or "")
    return bool(params.get("gpus_per_node") or params.get("gpus_per_task")) or "gpu" in gres


def check_before_submit(config: DictConfig, params: dict[str, Any]) -> list[str]:
    """Raise on a launch that cannot work; return warnings (one line each) for one that
    works worse than the user probably expects."""
    accelerator = str(OmegaConf.select(config, "trainer.accelerator", default="cpu"))
    gpu = requests_gpu(params)
    if accelerator in ("gpu", "cuda") and not gpu:
        raise MiaError(f"trainer.accelerator={accelerator} but hydra.launcher.gpus_per_node="
                       f"{shown(params.get('gpus_per_node'))}: the jobs would get no GPU; {CPU_RECIPE}, "
                       "or give each job a GPU (hydra.launcher.gpus_per_node=1)")
    warnings = []
    if accelerator == "cpu" and gpu:
        warnings.append(f"trainer.accelerator=cpu but each job asks for a GPU (hydra.launcher.gpus_per_node="
                        f"{shown(params.get('gpus_per_node'))}) it will not use; {CPU_RECIPE}")
    timeout_min, max_timeouts = int(params.get("timeout_min") or 0), int(params.get("max_num_timeout") or 0)
    if 0 < timeout_min <= 10 and max_timeouts > 0:
        # submitit's SignalHandler.has_timed_out: min(0.8 * limit, limit - 10 min) <= 0
        warnings.append(f"hydra.launcher.timeout_min={timeout_min} is 10 or less: submitit then counts every "
                        f"USR2, a preemption's too, as a time-out, so a job is requeued at most "
                        f"hydra.launcher.max_num_timeout={max_timeouts} times in all")
    return warnings


def too_big(params: dict[str, Any]) -> str:
    """The hint for a job larger than any node of its partition."""
    return (f"no node has hydra.launcher.cpus_per_task={shown(params.get('cpus_per_task'))} CPUs and "
            f"hydra.launcher.mem_gb={shown(params.get('mem_gb'))} GB (gpus_per_node="
            f"{shown(params.get('gpus_per_node'))}, timeout_min={shown(params.get('timeout_min'))}) for one job; "
            "lower them (`sinfo -o '%P %c %m %G %l'` shows what the nodes have)")


def pending_hint(reason: str, params: dict[str, Any]) -> str:
    """What to change for a job pending for a reason that does not clear by itself."""
    if reason == "PartitionTimeLimit":
        return f"hydra.launcher.timeout_min={shown(params.get('timeout_min'))} is above the partition's limit"
    if reason == "InvalidAccount":
        return f"hydra.launcher.account={shown(params.get('account'))} is not one of yours"
    if reason == "InvalidQOS":
        return f"hydra.launcher.qos={shown(params.get('qos'))} is not allowed here"
    if reason == "BadConstraints":
        return f"no node has hydra.launcher.constraint={shown(params.get('constraint'))}"
    return too_big(params)  # PartitionConfig, PartitionNodeLimit


def check_watch_keys(check_s: float, vanished_s: float) -> None:
    """The watchdog's own keys (mia's, not submitit's)."""
    if check_s < 1:
        raise MiaError(f"hydra.launcher.queue_check_s={check_s:g}: must be at least 1 (seconds between squeue calls)")
    if vanished_s < 0:
        raise MiaError(f"hydra.launcher.vanished_after_s={vanished_s:g}: must be 0 or more (seconds)")


def sbatch_refusal(message: str, params: dict[str, Any]) -> MiaError:
    """One line for an `sbatch` that refused the jobs, naming the launcher keys to change."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip()) or "no message"
    lowered = text.lower()
    if "gres" in lowered or "generic resource" in lowered:
        hint = (f"the nodes have no such GPU (hydra.launcher.gpus_per_node={shown(params.get('gpus_per_node'))}); "
                f"{CPU_RECIPE}, or pick a GPU partition (hydra.launcher.partition)")
    elif "node configuration is not available" in lowered or "memory" in lowered or "cpu count" in lowered:
        hint = too_big(params)
    elif "partition" in lowered:
        hint = f"hydra.launcher.partition={shown(params.get('partition'))} (`sinfo -s` lists the partitions)"
    elif "account" in lowered or "association" in lowered:
        hint = f"hydra.launcher.account={shown(params.get('account'))} (`sacctmgr show assoc user=$USER`)"
    elif "time limit" in lowered:
        hint = f"hydra.launcher.timeout_min={shown(params.get('timeout_min'))} is above the partition's limit"
    else:
        hint = "check hydra.launcher.{partition,account,qos,cpus_per_task,mem_gb,gpus_per_node,timeout_min}"
    return MiaError(f"sbatch refused the jobs: {text}; {hint}")
