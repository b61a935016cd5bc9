"""The quantile regressor of `qmia`: an image in, a quantile of the target's score out.

A small conv net (or a torchvision ResNet18) whose head has one output per class; the
output for the point's own label is its prediction (the paper's label-dependent head: the
score distribution of a point depends on its class). Trained with the pinball loss at
level q, it predicts the q-quantile of the target's score on non-members that look like
this image. Inputs are standardised inside `forward` with the training set's per-channel
statistics (buffers), targets with their mean and std (buffers), so a trained module needs
nothing else to predict in the score's own units.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn
from torchvision.models import resnet18


def conv_backbone(width: int) -> tuple[nn.Module, int]:
    """Three conv-BN-ReLU blocks (width, 2*width, 4*width), pooled to one vector."""
    layers: list[nn.Module] = []
    channels = 3
    for block in range(3):
        out = width * 2 ** block
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        layers.append(nn.MaxPool2d(2) if block < 2 else nn.AdaptiveAvgPool2d(1))
        channels = out
    return nn.Sequential(*layers, nn.Flatten()), channels


def resnet_backbone() -> tuple[nn.Module, int]:
    net = resnet18(weights=None, num_classes=1)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)  # small images: CIFAR stem
    net.maxpool = nn.Identity()
    features = net.fc.in_features
    net.fc = nn.Identity()
    return net, features


def pinball_loss(prediction: Tensor, target: Tensor, quantile: float) -> Tensor:
    """Mean of max(q * (t - p), (q - 1) * (t - p)): minimised by the q-quantile of t."""
    residual = target - prediction
    return torch.maximum(quantile * residual, (quantile - 1) * residual).mean()


class QuantileRegressor(L.LightningModule):
    def __init__(self, num_classes: int, quantile: float, arch: str = "cnn", width: int = 32, lr: float = 1e-3,
                 weight_decay: float = 5e-4, epochs: int = 30, image_mean: Tensor | None = None,
                 image_std: Tensor | None = None, target_mean: float = 0.0, target_std: float = 1.0) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["image_mean", "image_std"])
        self.backbone, features = conv_backbone(width) if arch == "cnn" else resnet_backbone()
        self.head = nn.Linear(features, num_classes)
        self.register_buffer("image_mean", torch.zeros(1, 3, 1, 1) if image_mean is None else image_mean.view(1, -1, 1, 1))
        self.register_buffer("image_std", torch.ones(1, 3, 1, 1) if image_std is None else image_std.view(1, -1, 1, 1))
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))
        self.quantile, self.lr, self.weight_decay, self.epochs = float(quantile), float(lr), float(weight_decay), epochs

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        """The standardised q-quantile prediction for each (image, label)."""
        out = self.head(self.backbone((images - self.image_mean) / self.image_std))
        return out.gather(1, labels.view(-1, 1)).squeeze(1)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, packed = batch  # packed: [B, 2] = (label, score)
        labels, target = packed[:, 0].long(), packed[:, 1]
        loss = pinball_loss(self(images, labels), (target - self.target_mean) / self.target_std, self.quantile)
        self.log("qmia/train_pinball", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(self.epochs), 1))
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    @torch.no_grad()
    def predict_quantile(self, images: Tensor, labels: Tensor, batch_size: int = 512) -> Tensor:
        """The q-quantile in the score's own units, float64 [n] on the CPU."""
        was_training = self.training
        self.eval()
        device = self.image_mean.device
        out = [self(chunk.to(device), lab.to(device)).double().cpu()
               for chunk, lab in zip(images.split(batch_size), labels.split(batch_size))]
        self.train(was_training)
        standardised = torch.cat(out) if out else torch.empty(0, dtype=torch.float64)
        return standardised * float(self.target_std) + float(self.target_mean)
