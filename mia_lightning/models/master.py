"""The master MLP: a deep ReLU network from confidence features to member / non-member.

Features arrive raw (probabilities next to losses of 1e4); the module stores the
training table's mean and std as buffers and standardises inside `forward`, so a saved
model carries its own normalisation and scoring needs nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MasterMLP(L.LightningModule):
    """Linear/ReLU stack ending in 2 logits (non-member, member), trained with AdamW."""

    def __init__(self, in_dim: int, widths: Sequence[int], lr: float = 1e-3, weight_decay: float = 1e-4,
                 feature_mean: Tensor | None = None, feature_std: Tensor | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["feature_mean", "feature_std"])
        self.register_buffer("feature_mean", torch.zeros(in_dim) if feature_mean is None else feature_mean.float())
        self.register_buffer("feature_std", torch.ones(in_dim) if feature_std is None else feature_std.float())
        layers: list[nn.Module] = []
        sizes = [int(in_dim), *[int(w) for w in widths]]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], 2))
        self.net = nn.Sequential(*layers)
        self.lr, self.weight_decay = float(lr), float(weight_decay)

    @staticmethod
    def standardizer(features: Tensor) -> tuple[Tensor, Tensor]:
        """Per-column mean and std of a training table (std floored so constants stay finite)."""
        table = features.double()
        return table.mean(0).float(), table.std(0, unbiased=False).clamp_min(1e-6).float()

    def forward(self, features: Tensor) -> Tensor:
        return self.net((features - self.feature_mean) / self.feature_std)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        features, targets = batch
        logits = self(features)
        loss = F.cross_entropy(logits, targets)
        accuracy = (logits.argmax(1) == targets).float().mean()
        self.log("master/train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("master/train_acc", accuracy, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    @torch.no_grad()
    def member_logit(self, features: Tensor, batch_size: int = 65536) -> Tensor:
        """log P(member) - log P(non-member) per row, float64 on the CPU."""
        if features.shape[0] == 0:
            return torch.empty(0, dtype=torch.float64)
        was_training = self.training
        self.eval()
        device = self.feature_mean.device
        out = [self(chunk.to(device).float()).double() for chunk in features.split(batch_size)]
        self.train(was_training)
        logits = torch.cat(out).cpu()
        return logits[:, 1] - logits[:, 0]
