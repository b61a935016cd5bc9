"""A StackedResNet18 of G models is exactly G torchvision ResNet18s: forward, training, export."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mia_lightning.models.resnet import build_resnet18
from mia_lightning.models.stacked_resnet import (
    StackedResNet18,
    VmapResNet18,
    load_torchvision_state_dicts,
    stack_inputs,
    to_torchvision_state_dicts,
    unstack_inputs,
)

NUM_CLASSES = 7
# the imagenet stem downsamples 32x32 to 1x1 at layer4; the cifar stem keeps it at 4x4 from 16x16
CASES = [("imagenet", 32, 8), ("cifar", 16, 4)]  # (stem, image size, batch per model)
TOL = dict(rtol=1e-4, atol=1e-4)  # float32 train-mode BN over few values amplifies rounding
TOL64 = dict(rtol=1e-9, atol=1e-9)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: with 2 threads on 2 shared cores, any other busy process makes
    OpenMP barriers stall and these small-tensor tests 5-10x slower (measured 2 s vs 22 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _plain_and_stacked(g: int, stem: str, seed: int = 0) -> tuple[list[nn.Module], StackedResNet18]:
    torch.manual_seed(seed)
    plain = [build_resnet18(NUM_CLASSES, stem) for _ in range(g)]
    stacked = StackedResNet18(g, NUM_CLASSES, stem)
    load_torchvision_state_dicts(stacked, [p.state_dict() for p in plain])
    return plain, stacked


def _data(g: int, batch: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(g, batch, 3, size, size, generator=gen)
    y = torch.randint(0, NUM_CLASSES, (g, batch), generator=gen)
    return x, y


def _set_mode(modules: list[nn.Module], train: bool) -> None:
    for m in modules:
        m.train(train)


def _plain_logits(plain: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    return torch.stack([net(x[i]) for i, net in enumerate(plain)])


def test_stack_inputs_layout() -> None:
    x = torch.randn(3, 2, 3, 4, 4)
    s = stack_inputs(x)
    assert s.shape == (2, 9, 4, 4)
    assert torch.equal(s[1, 3:6], x[1, 1])  # model 1, sample 1 on channels [3, 6)
    assert torch.equal(unstack_inputs(s, 3), x)


@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_export_has_exact_torchvision_keys_and_shapes(stem: str) -> None:
    stacked = StackedResNet18(3, NUM_CLASSES, stem)
    ref = build_resnet18(NUM_CLASSES, stem).state_dict()
    sds = to_torchvision_state_dicts(stacked)
    assert len(sds) == 3
    for sd in sds:
        assert list(sd) == list(ref)
        for k, v in ref.items():
            assert sd[k].shape == v.shape and sd[k].dtype == v.dtype, k
        build_resnet18(NUM_CLASSES, stem).load_state_dict(sd)  # strict load works
    # fresh init: G different models, each initialised like torchvision's ResNet18
    assert not torch.equal(sds[0]["conv1.weight"], sds[1]["conv1.weight"])
    assert not torch.equal(sds[0]["fc.weight"], sds[2]["fc.weight"])
    for sd in sds:
        std = sd["layer3.0.conv1.weight"].std().item()
        assert abs(std - math.sqrt(2 / (256 * 9))) < 0.1 * std  # kaiming fan_out of one model
        assert torch.equal(sd["bn1.weight"], torch.ones(64)) and int(sd["bn1.num_batches_tracked"]) == 0


@pytest.mark.parametrize("stem,size,batch", CASES)
def test_forward_train_and_export_match_plain_nets(stem: str, size: int, batch: int) -> None:
    g = 2
    plain, stacked = _plain_and_stacked(g, stem)
    plain_init = [{k: v.clone() for k, v in p.state_dict().items()} for p in plain]
    x, _ = _data(g, batch, size, seed=1)

    _set_mode([stacked, *plain], train=False)
    with torch.no_grad():
        torch.testing.assert_close(stacked(stack_inputs(x)), _plain_logits(plain, x), rtol=1e-5, atol=1e-5)
        _set_mode([stacked, *plain], train=True)
        out = stacked(stack_inputs(x))
        assert out.shape == (g, batch, NUM_CLASSES)
        torch.testing.assert_close(out, _plain_logits(plain, x), **TOL)

    # start training from identical states: the float32 forward above left running stats ~1e-7 apart
    load_torchvision_state_dicts(stacked, [p.state_dict() for p in plain])
    # A few SGD steps (momentum + weight decay), each model on its own batch. In float64: in
    # float32, ReLU/BN on tiny batches amplify 1e-7 rounding differences (different conv
    # kernels) to ~1e-3 within three steps in plain nets too, which would hide real bugs.
    for m in [stacked, *plain]:
        m.double()
    opt_s = torch.optim.SGD(stacked.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    opts_p = [torch.optim.SGD(p.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4) for p in plain]
    for step in range(3):
        x, y = _data(g, batch, size, seed=10 + step)
        logits = stacked(stack_inputs(x.double()))
        loss = sum(F.cross_entropy(logits[i], y[i]) for i in range(g))
        opt_s.zero_grad()
        loss.backward()
        opt_s.step()
        for i, (net, opt) in enumerate(zip(plain, opts_p)):
            opt.zero_grad()
            F.cross_entropy(net(x[i].double()), y[i]).backward()
            opt.step()

    exported = to_torchvision_state_dicts(stacked)
    for sd, net in zip(exported, plain):
        for k, v in net.state_dict().items():
            if k.endswith("num_batches_tracked"):
                assert int(sd[k]) == int(v) == 4  # 1 train-mode forward + 3 steps
            else:
                torch.testing.assert_close(sd[k], v, **TOL64, msg=lambda m, k=k: f"{k}: {m}")
    # parameters really moved, so the comparison above is not trivially true
    moved = (exported[0]["conv1.weight"] - plain_init[0]["conv1.weight"].double()).abs().max()
    assert moved > 1e-3

    reloaded = [build_resnet18(NUM_CLASSES, stem).double() for _ in range(g)]
    for net, sd in zip(reloaded, exported):
        net.load_state_dict(sd)
        net.eval()
    stacked.eval()
    x, _ = _data(g, batch, size, seed=99)
    with torch.no_grad():
        torch.testing.assert_close(_plain_logits(reloaded, x.double()), stacked(stack_inputs(x.double())), **TOL64)

    again = StackedResNet18(g, NUM_CLASSES, stem).double()  # resume path: load the export back
    load_torchvision_state_dicts(again, exported)
    for k, v in stacked.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


@pytest.mark.parametrize("stem,size,batch", CASES)
def test_float32_channels_last_gradients_match_plain_nets(stem: str, size: int, batch: int) -> None:
    """The float32 (oneDNN) kernels training uses, in channels_last: same logits and gradients.

    The plain nets run in channels_last too: the format alone can move a plain net's conv1
    gradient by ~1e-2 of its scale (kernel-dependent rounding and tie-breaking, e.g. maxpool),
    identically for plain and stacked nets.
    """
    g = 2
    plain, stacked = _plain_and_stacked(g, stem)
    x, y = _data(g, batch, size, seed=3)
    _set_mode([stacked, *plain], train=False)
    with torch.no_grad():
        ref = stacked(stack_inputs(x))
    for m in [stacked, *plain]:
        m.to(memory_format=torch.channels_last)
    assert stacked.layer2[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    cl_inputs = stack_inputs(x).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(stacked(cl_inputs), ref, rtol=1e-5, atol=1e-5)

    _set_mode([stacked, *plain], train=True)
    logits = stacked(cl_inputs)
    plain_logits = torch.stack([net(x[i].contiguous(memory_format=torch.channels_last)) for i, net in enumerate(plain)])
    torch.testing.assert_close(logits, plain_logits, **TOL)
    sum(F.cross_entropy(logits[i], y[i]) + F.cross_entropy(plain_logits[i], y[i]) for i in range(g)).backward()
    for name, param in stacked.named_parameters():
        grads = list(param.grad) if name.startswith("fc.") else list(param.grad.chunk(g))
        for grad, net in zip(grads, plain):
            ref_grad = net.get_parameter(name).grad
            scale = ref_grad.abs().max().item()
            assert scale > 0, name
            assert (grad - ref_grad).abs().max().item() <= 1e-4 * scale, name


def test_load_rejects_wrong_inputs() -> None:
    stacked = StackedResNet18(2, NUM_CLASSES, "cifar")
    sds = to_torchvision_state_dicts(stacked)
    with pytest.raises(ValueError, match="expected 2 state_dicts"):
        load_torchvision_state_dicts(stacked, sds[:1])
    bad = [dict(sds[0]), dict(sds[1])]
    bad[1]["bn1.num_batches_tracked"] = torch.tensor(5)
    with pytest.raises(ValueError, match="num_batches_tracked"):
        load_torchvision_state_dicts(stacked, bad)
    with pytest.raises(ValueError, match="shape"):
        load_torchvision_state_dicts(stacked, [build_resnet18(NUM_CLASSES, "imagenet").state_dict()] * 2)
    with pytest.raises(ValueError, match="missing"):
        load_torchvision_state_dicts(stacked, [{k: v for k, v in sd.items() if k != "fc.bias"} for sd in sds])
    with pytest.raises(ValueError, match="input channels"):
        stacked(torch.randn(1, 3, 8, 8))


def test_vmap_variant_trains_like_plain_nets_with_batchnorm() -> None:
    """Train-mode BN under vmap updates the stacked running stats, no BN patching needed."""
    g, batch, size, stem = 2, 4, 8, "cifar"
    torch.manual_seed(0)
    vm = VmapResNet18(g, NUM_CLASSES, stem).double()  # float64: see the stacked training test
    plain = [build_resnet18(NUM_CLASSES, stem).double() for _ in range(g)]
    for net, sd in zip(plain, vm.torchvision_state_dicts()):
        net.load_state_dict(sd)
    opt_v = torch.optim.SGD(vm.parameters(), lr=0.05, momentum=0.9)
    opts_p = [torch.optim.SGD(p.parameters(), lr=0.05, momentum=0.9) for p in plain]
    for step in range(2):
        x, y = _data(g, batch, size, seed=20 + step)
        x = x.double()
        logits, plain_logits = vm(x), _plain_logits(plain, x)  # one train-mode forward each
        torch.testing.assert_close(logits.detach(), plain_logits.detach(), **TOL64)
        for opt in [opt_v, *opts_p]:
            opt.zero_grad()
        sum(F.cross_entropy(logits[i], y[i]) + F.cross_entropy(plain_logits[i], y[i]) for i in range(g)).backward()
        for opt in [opt_v, *opts_p]:
            opt.step()
    for sd, net in zip(vm.torchvision_state_dicts(), plain):
        ref = net.state_dict()
        assert set(sd) == set(ref)
        assert int(sd["bn1.num_batches_tracked"]) == 2
        assert not torch.equal(sd["bn1.running_mean"], torch.zeros(64, dtype=torch.float64))
        for k, v in ref.items():
            torch.testing.assert_close(sd[k], v, **TOL64, msg=lambda m, k=k: f"{k}: {m}")
    vm.eval()
    x, _ = _data(g, batch, size, seed=50)
    with torch.no_grad():
        torch.testing.assert_close(vm(x.double()), _plain_logits([p.eval() for p in plain], x.double()), **TOL64)
