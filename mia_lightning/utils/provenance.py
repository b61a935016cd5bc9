"""Where a model was trained: torch version, device, CPU threads.

Why: training is deterministic for a given seed only on the same numerics. Two machines (or
one machine with another `OMP_NUM_THREADS`) reduce floating-point sums in another order and
give shadows and targets that differ in the last digits, and so attack figures that differ in
the third. The store key ignores this on purpose (any machine's shadows are valid shadows and
a cluster's share one store), so each model records it instead: when two runs disagree,
`summary.json` / `task.json` say whether they trained on the same numerics.
"""

from __future__ import annotations

import platform
from typing import Any

import torch


def cpu_name() -> str:
    """The CPU model as Linux names it (/proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def training_environment(device: torch.device | str) -> dict[str, Any]:
    """JSON-ready facts that decide the last digits of a run that trained on `device`."""
    where = torch.device(device)
    found: dict[str, Any] = {"torch": torch.__version__, "device": where.type, "cpu": cpu_name(),
                             "cpu_threads": torch.get_num_threads()}
    if where.type == "cuda" and torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name(where)
    return found
