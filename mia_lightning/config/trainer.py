"""The `trainer` group: any `lightning.Trainer` argument, plus mia's own inference/memory keys.

Every Trainer argument mia does not set itself is a key of the group (null: Lightning's
default), so an ordinary Lightning flag passes straight through (`trainer.gradient_clip_val=1.0`,
`trainer.deterministic=true`, `trainer.max_time=00:02:00:00`) to every Trainer mia builds
(target, shadows, master). Lightning itself validates the values: `probe()` builds one
throw-away Trainer at startup, so a GPU that is not there or a misspelt precision is one
line before any work, not a traceback hours later.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from mia_lightning.config.checks import at_least, did_you_mean
from mia_lightning.errors import MiaError

# The defaults of `conf/trainer/cpu.yaml`, written once (the schema's default and the
# group's YAML both come from here).
LIGHTNING_DEFAULTS: dict[str, Any] = {
    "accelerator": "cpu", "devices": 1, "strategy": "auto", "precision": "32-true",
    "enable_progress_bar": True, "log_every_n_steps": 10,
}
MIA_KEYS: dict[str, Any] = {
    "inference_batch_size": 1024,  # images per forward pass when computing logits
    "max_memory_gb": 0.0,  # 0 = read from the machine; refuse tensors that would not fit
}
# The other lightning.Trainer arguments (tests/test_trainer_flags.py checks this list against
# Lightning's signature): keys of the group, null until set.
OTHER_FLAGS = (
    "num_nodes", "min_epochs", "max_time", "limit_train_batches", "limit_test_batches", "limit_predict_batches",
    "overfit_batches", "val_check_interval", "check_val_every_n_epoch", "enable_model_summary",
    "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm", "deterministic", "benchmark",
    "inference_mode", "profiler", "detect_anomaly", "barebones", "sync_batchnorm", "reload_dataloaders_every_n_epochs",
    "enable_autolog_hparams", "model_registry",
)
# Arguments mia sets itself, and the config key that decides them instead.
RESERVED = {
    "max_epochs": "shadow.epochs, task.train.epochs or master.epochs",
    "max_steps": "shadow.epochs", "min_steps": "shadow.epochs",
    "logger": "logger=tensorboard|none", "callbacks": "(set by mia)", "plugins": "(set by mia)",
    "default_root_dir": "store.root", "enable_checkpointing": "(every epoch, by mia)",
    "use_distributed_sampler": "(mia's samplers shard by rank)", "limit_val_batches": "(no validation)",
    "num_sanity_val_steps": "(no validation)", "fast_dev_run": "a tiny experiment (experiment=digits_smoke)",
}
# Flags that change how a run executes but not what it learns: left out of the shadow
# store key (like device and thread count). Any other flag you set enters the key.
EXECUTION_ONLY = {
    "accelerator", "devices", "strategy", "num_nodes", "precision", "enable_progress_bar", "log_every_n_steps",
    "enable_model_summary", "deterministic", "benchmark", "profiler", "detect_anomaly", "max_time",
    "inference_mode", "barebones", "enable_autolog_hparams", "model_registry",
}


def trainer_arguments() -> list[str]:
    import lightning as L

    return [name for name in inspect.signature(L.Trainer.__init__).parameters if name != "self"]


@dataclass(frozen=True)
class TrainerSettings:
    """The `trainer` group, split into Lightning's flags and mia's own keys."""

    flags: dict[str, Any] = field(default_factory=lambda: dict(LIGHTNING_DEFAULTS))
    inference_batch_size: int = MIA_KEYS["inference_batch_size"]
    max_memory_gb: float = MIA_KEYS["max_memory_gb"]

    @classmethod
    def cpu(cls, **flags: Any) -> "TrainerSettings":
        """The defaults (conf/trainer/cpu.yaml) with `flags` changed: for code that runs without Hydra."""
        return cls(flags={**LIGHTNING_DEFAULTS, **flags})

    @classmethod
    def from_mapping(cls, values: Any) -> "TrainerSettings":
        """From the composed group: mia's keys apart, null flags left to Lightning's defaults."""
        values = dict(values)
        mine = {key: values.pop(key, default) for key, default in MIA_KEYS.items()}
        return cls(flags={key: value for key, value in values.items() if value is not None}, **mine)

    @property
    def accelerator(self) -> str:
        return str(self.flags.get("accelerator", "auto"))

    @property
    def progress_bar(self) -> bool:
        return bool(self.flags.get("enable_progress_bar", True))

    @property
    def wants_gpu(self) -> bool:
        return self.accelerator in ("gpu", "cuda")

    def inference_device(self) -> str:
        import torch

        return "cuda" if self.wants_gpu and torch.cuda.is_available() else "cpu"

    def learning_flags(self) -> dict[str, Any]:
        """The flags set here that change what a model learns (part of the shadow store key)."""
        return {key: value for key, value in sorted(self.flags.items()) if key not in EXECUTION_ONLY}

    def execution_only(self) -> "TrainerSettings":
        """These settings without the flags that change what a model learns."""
        flags = {key: value for key, value in self.flags.items() if key in EXECUTION_ONLY}
        return TrainerSettings(flags, self.inference_batch_size, self.max_memory_gb)

    def validate(self, key: str = "trainer") -> None:
        """Unknown or reserved keys and mia's own ranges (`probe()` asks Lightning about the rest)."""
        known = trainer_arguments()
        for name in self.flags:
            if name in RESERVED:
                raise MiaError(f"{key}.{name} is set by mia; use {RESERVED[name]} instead")
            if name not in known:
                raise MiaError(f"{key}.{name} is not a lightning.Trainer argument"
                               f"{did_you_mean(name, [*known, *MIA_KEYS])}")
        at_least(self.inference_batch_size, 1, f"{key}.inference_batch_size")
        at_least(self.max_memory_gb, 0, f"{key}.max_memory_gb (0 = read from the machine)")
        if "log_every_n_steps" in self.flags:
            at_least(self.flags["log_every_n_steps"], 1, f"{key}.log_every_n_steps")

    def probe(self, key: str = "trainer") -> None:
        """Lightning's own verdict on these flags on this machine (a GPU asked for and not there)."""
        probe_trainer(self.flags, key)


def probe_trainer(flags: dict[str, Any], key: str = "trainer") -> None:
    """Build (and drop) a Trainer with `flags`; its complaint becomes one line naming the group."""
    import lightning as L

    quiet = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [logger.level for logger in quiet]
    try:
        for logger in quiet:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(None):
            warnings.simplefilter("ignore")
            L.Trainer(**flags, logger=False, enable_checkpointing=False, enable_model_summary=False)
    except Exception as error:  # Lightning raises MisconfigurationException, ValueError, TypeError, ImportError
        raise MiaError(_explain(flags, key, error)) from None
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)


def machine_devices() -> str:
    """What this machine offers Lightning, in words: "no GPU (CPU only, 2 cores)", "1 CUDA GPU (NVIDIA H200)"."""
    import os

    import torch

    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        return f"{count} CUDA GPU{'s' if count != 1 else ''} ({torch.cuda.get_device_name(0)})"
    return f"no GPU (CPU only, {os.cpu_count()} cores)"


def _explain(flags: dict[str, Any], key: str, error: BaseException) -> str:
    """What was asked, what this machine has, and what to pass instead, in one line."""
    text = " ".join(str(error).split()) or type(error).__name__
    accelerator = str(flags.get("accelerator", "auto"))
    missing_device = ("backend" in text or "not available" in text or "torch_xla" in text or "valid input" in text
                      or "only has" in text or "requested" in text)
    if accelerator in ("gpu", "cuda", "mps", "tpu") and missing_device:
        wanted = {"gpu": "a CUDA GPU", "cuda": "a CUDA GPU", "mps": "an Apple GPU (MPS)", "tpu": "a TPU"}[accelerator]
        asked = f"{key}.accelerator={accelerator}"
        devices = flags.get("devices")
        if devices not in (None, 1, "1", "auto"):
            asked += f" {key}.devices={devices}"
            wanted = f"{devices} of them" if accelerator not in ("gpu", "cuda") else f"{devices} CUDA GPUs"
        return (f"{asked} asks for {wanted}, but this machine has {machine_devices()}: "
                "pass trainer=cpu (or run on a machine that has one)")
    asked = ", ".join(f"{key}.{k}={v}" for k, v in flags.items() if k in ("accelerator", "devices", "strategy",
                                                                         "precision"))
    return f"{key}: lightning.Trainer refused {asked or 'these flags'}: {text}"
