"""Batched inference of a model's logits on every pool point, for every query."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mia_lightning.logits.queries import Query
from mia_lightning.models.resnet import Normalize


@torch.inference_mode()
def compute_logits(
    net: nn.Module,
    normalize: Normalize,
    images: Tensor,
    queries: list[Query],
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
) -> Tensor:
    """float32 [N, A, C] logits of `net` in eval mode on each query view of `images`."""
    device = torch.device(device)
    net = net.to(device).eval()
    normalize = normalize.to(device)
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        batch = images[start: start + batch_size].to(device, non_blocking=True)
        views = []
        for query in queries:
            inputs = normalize(query.apply(batch)).contiguous(memory_format=torch.channels_last)
            views.append(net(inputs).float())  # fp32 even on GPU: LiRA's phi needs the precision
        chunks.append(torch.stack(views, dim=1).cpu())
    return torch.cat(chunks).contiguous()


@dataclass(frozen=True)
class Inference:
    """How every model (target and shadows) is queried: normalisation, views, batch, device."""

    mean: list[float]
    std: list[float]
    queries: list[Query]
    batch_size: int = 1024
    device: str = "cpu"

    def logits(self, net: nn.Module, images: Tensor, queries: list[Query] | None = None) -> Tensor:
        """float32 [N, A, C] of `net` on `images` for `queries` (default: all of this inference's)."""
        return compute_logits(net, Normalize(self.mean, self.std), images, self.queries if queries is None else queries,
                              self.batch_size, self.device)
