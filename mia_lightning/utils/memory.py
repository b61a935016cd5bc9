"""Refuse, with a clear message, tensors that cannot fit, instead of dying of OOM later."""

from __future__ import annotations

from mia_lightning.errors import MiaError


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux); a large number elsewhere."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 50


def check_fits(num_bytes: int, what: str, key: str, limit_gb: float = 0.0) -> None:
    """Raise MiaError if `num_bytes` exceeds the limit (trainer.max_memory_gb, or 80% of free RAM)."""
    limit = int(limit_gb * 2**30) if limit_gb > 0 else int(0.8 * available_bytes())
    if num_bytes > limit:
        raise MiaError(
            f"{what} needs {num_bytes / 2**30:.1f} GiB but only {limit / 2**30:.1f} GiB is available; "
            f"reduce {key}"
        )
