"""Per-(model, point, query) signals computed from logits, shared by every attack.

All signals come out in float64 and finite for any finite float32 logits (even +-1e4):
nothing goes through a probability that could round to 0 or 1 on the way. The work is
chunked over models and rows so that a [64, 40000, 2, 44] float32 tensor never needs a
second full-size copy in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

# phi of a point whose class is the only class (C = 1): the model is "infinitely" sure.
# Finite so that downstream means, squares and sigmoids stay finite; larger than any phi
# that finite float32 logits can produce (|phi| <= 2 * 3.4e38 + log C).
PHI_MAX = 1e39

_ROWS_PER_CHUNK = 1 << 18  # rows per kernel call: 46 MB of work buffer at C = 44


def _label_index(labels: Tensor, queries: int) -> Tensor:
    """Class index for every (point, query) row, shaped [N * A, 1] for gather/scatter."""
    return labels.to(torch.int64).repeat_interleave(queries).view(-1, 1)


class _MarginKernel:
    """phi = z_y - logsumexp_{c != y} z_c, row block by row block, in reused buffers.

    Shifting by the max of the *other* logits keeps their exp-sum in [1, C-1]: no
    cancellation when p_y ~ 1, no underflow for logits of +-1e4. Reusing the buffers
    avoids fresh page-faulted allocations per block, which dominate on a small CPU.
    """

    def __init__(self, rows: int, classes: int, dtype: torch.dtype, device: torch.device) -> None:
        self.work = torch.empty(rows, classes, dtype=dtype, device=device)
        self.top = torch.empty(rows, 1, dtype=dtype, device=device)
        self.true = torch.empty(rows, 1, dtype=dtype, device=device)
        self.total = torch.empty(rows, dtype=dtype, device=device)

    def __call__(self, rows: Tensor, index: Tensor, temperature: float) -> Tensor:
        n = rows.shape[0]
        work, top, true, total = self.work[:n], self.top[:n], self.true[:n], self.total[:n]
        work.copy_(rows)
        if temperature != 1.0:
            work.div_(temperature)
        torch.gather(work, 1, index, out=true)
        work.scatter_(1, index, float("-inf"))
        torch.amax(work, 1, keepdim=True, out=top)
        torch.sum(work.sub_(top).exp_(), 1, out=total)
        return (true.squeeze(1).double() - top.squeeze(1).double()) - total.double().log_()


def _blocks(models: int, rows_per_model: int, index: Tensor) -> Iterator[tuple[int, int, Tensor]]:
    """(start, stop, label index) row blocks of the flattened [models * rows, C] logits:
    whole models per block when a model is small (fewer, larger kernel calls), else
    slices of one model."""
    if rows_per_model <= _ROWS_PER_CHUNK:
        per_block = _ROWS_PER_CHUNK // rows_per_model
        block_index = index.repeat(per_block, 1)
        for first in range(0, models, per_block):
            start, stop = first * rows_per_model, min(models, first + per_block) * rows_per_model
            yield start, stop, block_index[: stop - start]
        return
    for model in range(models):
        for offset in range(0, rows_per_model, _ROWS_PER_CHUNK):
            end = min(rows_per_model, offset + _ROWS_PER_CHUNK)
            base = model * rows_per_model
            yield base + offset, base + end, index[offset:end]


def true_class_margin(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> Tensor:
    """LiRA's phi (logit-scaled confidence of the true class), float64 [..., N, A] on the CPU.

    `logits` is [..., N, A, C] (any number of leading model dims), `labels` is [N].
    sigmoid(phi) is the softmax probability of the true label, log_sigmoid(phi) its log.
    """
    *lead, points, queries, classes = logits.shape
    out = torch.empty(*lead, points, queries, dtype=torch.float64)
    if classes == 1 or out.numel() == 0:
        return out.fill_(PHI_MAX)
    index = _label_index(labels, queries).to(logits.device)
    rows_per_model = points * queries
    flat_in = logits.reshape(-1, classes)
    flat_out = out.view(-1)
    models = flat_in.shape[0] // rows_per_model
    dtype = logits.dtype if logits.dtype in (torch.float32, torch.float64) else torch.float32
    kernel = _MarginKernel(min(flat_in.shape[0], _ROWS_PER_CHUNK), classes, dtype, logits.device)
    for start, stop, block_index in _blocks(models, rows_per_model, index):
        flat_out[start:stop] = kernel(flat_in[start:stop], block_index, temperature).cpu()
    return out.clamp_(-PHI_MAX, PHI_MAX)


def log_softmax64(logits: Tensor) -> Tensor:
    """log-softmax in float64 (small tensors only: the target's [N, A, C])."""
    return torch.log_softmax(logits.double(), dim=-1)


def true_class_log_prob(logits: Tensor, labels: Tensor) -> Tensor:
    """log p(y | x) per point and query, float64 [..., N, A]: minus the cross-entropy."""
    logp = log_softmax64(logits)
    index = labels.to(torch.int64).view(-1, 1, 1).expand(*logp.shape[:-1], 1)  # logits: [..., N, A, C]
    return logp.gather(-1, index).squeeze(-1)


def max_confidence(logits: Tensor) -> Tensor:
    """max_c softmax(z)_c, float64 [..., N, A]."""
    return log_softmax64(logits).amax(-1).exp()


def entropy(logits: Tensor) -> Tensor:
    """Shannon entropy of softmax(z) in nats, float64 [..., N, A] (0 * log 0 taken as 0)."""
    logp = log_softmax64(logits)
    return -(logp.exp() * logp).nan_to_num(0.0).sum(-1)


def model_chunks(models: int, per_model: int, budget: int = 1 << 20) -> Iterator[slice]:
    """Slices of whole models with about `budget` elements each: temporaries stay small
    (no page-faulted fresh allocations) while the number of kernel calls stays low."""
    step = max(1, budget // max(per_model, 1))
    for first in range(0, models, step):
        yield slice(first, min(models, first + step))
