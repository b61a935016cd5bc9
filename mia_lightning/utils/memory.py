"""Refuse, with a clear message, tensors that cannot fit, instead of dying of OOM later."""

from __future__ import annotations

from mia_lightning.errors import MiaError

# Activations a ResNet18 keeps for backward, per 32x32 image (measured: forward outputs of
# every leaf module, float32), and its parameter count.
ACTIVATION_BYTES_32 = {"imagenet": 0.6 * 2**20, "cifar": 7.1 * 2**20}
RESNET18_PARAMS = 11_200_000


def available_bytes(device: str = "cpu") -> int:
    """Free memory of `device`: MemAvailable from /proc/meminfo, or the GPU's free memory
    (only once CUDA is initialised: initialising it here could break a later fork-based launch)."""
    if str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info()[0]) if torch.cuda.is_initialized() else 1 << 50
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 50


def check_fits(num_bytes: int, what: str, key: str, limit_gb: float = 0.0, device: str = "cpu") -> None:
    """Raise MiaError if `num_bytes` exceeds the limit (trainer.max_memory_gb, or 80% of free memory)."""
    limit = int(limit_gb * 2**30) if limit_gb > 0 else int(0.8 * available_bytes(device))
    if num_bytes > limit:
        raise MiaError(
            f"{what} needs {num_bytes / 2**30:.2f} GiB but only {limit / 2**30:.2f} GiB is available; "
            f"reduce {key}"
        )


def training_bytes(pool_points: int, image_size: int, batch_size: int, stem: str, models: int = 1) -> int:
    """A rough upper estimate of shadow training memory: the in-memory pool (float32), and per
    model trained at once: one batch's activations and their gradients, and the weights, their
    gradients and optimizer state."""
    pool = pool_points * 3 * image_size * image_size * 4
    activations = ACTIVATION_BYTES_32.get(stem, ACTIVATION_BYTES_32["cifar"]) * (image_size / 32) ** 2
    per_model = 2 * batch_size * activations + 4 * 4 * RESNET18_PARAMS
    return int(pool + models * per_model)
