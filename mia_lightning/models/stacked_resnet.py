"""G independent ResNet18s computed as one network, for training shadows side by side.

Small images (32x32) leave a single ResNet18 too little work per kernel to keep a device
busy; stacking G models into one wider network with grouped convolutions gives each kernel
G times the work while the models stay mathematically independent:

* every conv is `groups=G` over `G*C` channels, so model g only ever sees channels
  `[g*C, (g+1)*C)`; the first conv takes the G models' own batches concatenated on the
  channel axis (see `stack_inputs`);
* BatchNorm2d over `G*C` channels normalises each channel on its own, so each model keeps
  its own batch statistics and running statistics;
* the classifier is a batched matmul over a `[G, num_classes, 512]` weight.

Module names mirror torchvision's ResNet (`conv1`, `layer1.0.bn2`, `layer2.0.downsample.0`,
`fc`), so `to_torchvision_state_dicts` / `load_torchvision_state_dicts` are plain chunking
along dim 0: checkpoints of a stacked run unpack into ordinary `build_resnet18` weights.

`VmapResNet18` is the alternative the design asks to measure against: G stock torchvision
nets run through `torch.func.stack_module_state` + `vmap(functional_call(...))`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from mia_lightning.models.resnet import STEMS, build_resnet18

__all__ = [
    "StackedResNet18",
    "VmapResNet18",
    "stack_inputs",
    "unstack_inputs",
    "to_torchvision_state_dicts",
    "load_torchvision_state_dicts",
]


def stack_inputs(batches: Tensor) -> Tensor:
    """[G, B, C, H, W] (one batch per model) -> [B, G*C, H, W], model g on channels [gC, (g+1)C)."""
    if batches.dim() != 5:
        raise ValueError(f"stack_inputs expects [G, B, C, H, W], got shape {tuple(batches.shape)}")
    g, b, c, h, w = batches.shape
    return batches.permute(1, 0, 2, 3, 4).reshape(b, g * c, h, w)


def unstack_inputs(stacked: Tensor, num_models: int) -> Tensor:
    """Inverse of `stack_inputs`: [B, G*C, H, W] -> [G, B, C, H, W]."""
    b, gc, h, w = stacked.shape
    return stacked.reshape(b, num_models, gc // num_models, h, w).permute(1, 0, 2, 3, 4)


def _conv(g: int, cin: int, cout: int, kernel: int, stride: int, padding: int) -> nn.Conv2d:
    return nn.Conv2d(g * cin, g * cout, kernel, stride=stride, padding=padding, groups=g, bias=False)


class _StackedBasicBlock(nn.Module):
    """torchvision's BasicBlock with every conv grouped over G models (same attribute names)."""

    def __init__(self, g: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv(g, cin, cout, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(g * cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv(g, cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(g * cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(_conv(g, cin, cout, 1, stride, 0), nn.BatchNorm2d(g * cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class _StackedLinear(nn.Module):
    """G independent Linear(in, out) layers: [G, B, in] -> [G, B, out]."""

    def __init__(self, g: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(g, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(g, out_features))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class StackedResNet18(nn.Module):
    """G independent torchvision ResNet18s in one module.

    Input `[B, G*3, H, W]` (build it with `stack_inputs`), output logits `[G, B, num_classes]`.
    A fresh instance is initialised exactly like G independently built `build_resnet18` nets
    (it builds them and loads their weights), because default init of a grouped conv would
    use the wrong fan-in/fan-out.
    """

    def __init__(self, num_models: int, num_classes: int, stem: str = "imagenet") -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"model.stem must be one of {STEMS}, got {stem!r}")
        if num_models < 1:
            raise ValueError(f"num_models must be >= 1, got {num_models}")
        g = self.num_models = num_models
        self.num_classes = num_classes
        self.stem = stem
        if stem == "imagenet":
            self.conv1 = _conv(g, 3, 64, 7, 2, 3)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = _conv(g, 3, 64, 3, 1, 1)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(g * 64)
        self.relu = nn.ReLU(inplace=True)
        widths = (64, 128, 256, 512)
        cin = 64
        for i, cout in enumerate(widths):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(_StackedBasicBlock(g, cin, cout, stride), _StackedBasicBlock(g, cout, cout, 1))
            setattr(self, f"layer{i + 1}", layer)
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = _StackedLinear(g, 512, num_classes)
        load_torchvision_state_dicts(self, [build_resnet18(num_classes, stem).state_dict() for _ in range(g)])

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != 3 * self.num_models:
            raise ValueError(f"expected {3 * self.num_models} input channels (G*3), got {x.shape[1]}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        feats = self.avgpool(x).flatten(1)  # [B, G*512]
        feats = feats.view(feats.shape[0], self.num_models, -1).transpose(0, 1)  # [G, B, 512]
        return self.fc(feats)


def _is_shared_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def member_part(key: str, value: Tensor, g: int, num_models: int) -> Tensor:
    """Model g's own copy of the stacked tensor `key` (a `StackedResNet18` state_dict key, or
    optimizer state shaped like that parameter): BatchNorm's shared step counter whole, the
    grouped head's row g, and the g-th of `num_models` blocks along dim 0 for the rest."""
    if _is_shared_counter(key):
        return value.clone()
    if key.startswith("fc."):
        return value[g].clone()
    return value.chunk(num_models, dim=0)[g].contiguous().clone()


@torch.no_grad()
def to_torchvision_state_dicts(stacked: StackedResNet18) -> list[dict[str, Tensor]]:
    """Split into G ordinary torchvision ResNet18 state_dicts (same keys/shapes as `build_resnet18`)."""
    g = stacked.num_models
    state = stacked.state_dict()
    return [{key: member_part(key, value, i, g) for key, value in state.items()} for i in range(g)]


@torch.no_grad()
def load_torchvision_state_dicts(stacked: StackedResNet18, state_dicts: Sequence[dict[str, Tensor]]) -> None:
    """Inverse of `to_torchvision_state_dicts`: load G torchvision ResNet18 state_dicts in place.

    BatchNorm's `num_batches_tracked` is one counter for all G models (they step together),
    so the G dicts must agree on it.
    """
    g = stacked.num_models
    if len(state_dicts) != g:
        raise ValueError(f"expected {g} state_dicts, got {len(state_dicts)}")
    target = stacked.state_dict()
    expected = set(target)
    new: dict[str, Tensor] = {}
    for i, sd in enumerate(state_dicts):
        if set(sd) != expected:
            missing, extra = sorted(expected - set(sd)), sorted(set(sd) - expected)
            raise ValueError(f"state_dict {i} is not a ResNet18 of this shape: missing {missing[:5]}, unexpected {extra[:5]}")
    for key, ref in target.items():
        values = [sd[key] for sd in state_dicts]
        if _is_shared_counter(key):
            if any(not torch.equal(v, values[0]) for v in values):
                raise ValueError(f"{key}: num_batches_tracked differs between models; they must have stepped together")
            new[key] = values[0].clone()
        elif key.startswith("fc."):
            new[key] = torch.stack(values)
        else:
            new[key] = torch.cat(values, dim=0)
        if new[key].shape != ref.shape:
            raise ValueError(f"{key}: got shape {tuple(new[key].shape)}, expected {tuple(ref.shape)}")
    stacked.load_state_dict(new)


class VmapResNet18(nn.Module):
    """G stock torchvision ResNet18s run with `torch.func.vmap(functional_call(...))`.

    Parameters and buffers are stacked along a leading G axis (`stack_module_state`).
    BatchNorm in train mode works without `replace_all_batch_norm_modules_`: the running
    stats are stacked buffers passed into `functional_call`, so under vmap they are batched
    tensors and BN's in-place updates land in this module's own stacked buffers.

    Input `[G, B, 3, H, W]`, output `[G, B, num_classes]`. Kept as the measured alternative
    to `StackedResNet18` (see scripts/bench_stacked_micro.py).
    """

    def __init__(self, num_models: int, num_classes: int, stem: str = "imagenet") -> None:
        super().__init__()
        nets = [build_resnet18(num_classes, stem) for _ in range(num_models)]
        params, buffers = stack_module_state(nets)
        self.num_models = num_models
        self._names = list(params)
        self._buffer_names = list(buffers)
        for name, p in params.items():
            self.register_parameter(_flat(name), nn.Parameter(p.detach().clone()))
        for name, b in buffers.items():
            self.register_buffer(_flat(name), b.clone())
        # the architecture only (meta tensors): functional_call supplies every parameter and buffer;
        # set as a plain attribute so it is not a submodule and adds nothing to the state_dict
        object.__setattr__(self, "_base", nets[0].to("meta"))

    def forward(self, x: Tensor) -> Tensor:
        params = {n: getattr(self, _flat(n)) for n in self._names}
        buffers = {n: getattr(self, _flat(n)) for n in self._buffer_names}
        self._base.train(self.training)

        def one(p: dict[str, Tensor], b: dict[str, Tensor], xi: Tensor) -> Tensor:
            return functional_call(self._base, (p, b), (xi,))

        return torch.vmap(one, in_dims=(0, 0, 0), randomness="different")(params, buffers, x)

    def torchvision_state_dicts(self) -> list[dict[str, Tensor]]:
        """The G models as ordinary torchvision state_dicts."""
        names = self._names + self._buffer_names
        return [{n: getattr(self, _flat(n))[i].detach().clone() for n in names} for i in range(self.num_models)]


def _flat(name: str) -> str:
    return name.replace(".", "__")
