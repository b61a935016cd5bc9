"""Store keys: a fingerprint of the task's data and a hash of the shadow recipe.

The shadow hash covers every config value that changes a shadow's weights (model,
split, recipe, normalisation, seed) and nothing else, so sweeps over `shadow.count` or
attack settings reuse the same models while a changed recipe gets a fresh entry.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from torch import Tensor


def tensor_digest(*tensors: Tensor) -> str:
    hasher = hashlib.sha256()
    for tensor in tensors:
        data = tensor.detach().cpu().contiguous()
        hasher.update(str(data.dtype).encode() + str(list(data.shape)).encode())
        flat = data.reshape(-1)  # a 0-dim tensor cannot be viewed as bytes; its shape is hashed above
        hasher.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return hasher.hexdigest()


def task_fingerprint(ids: Tensor, labels: Tensor, images: Tensor) -> str:
    """16 hex chars identifying the attack pool (ids + labels + image bytes)."""
    return tensor_digest(ids.to(torch.int64), labels.to(torch.int64), images.to(torch.float32))[:16]


def config_hash(values: dict[str, Any]) -> str:
    """12 hex chars of a canonical JSON of `values`."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]
