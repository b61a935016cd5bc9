"""The TML25 task format: our writer, our safe reader, and the assignment's own loader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mia_lightning.errors import MiaError
from mia_lightning.models.resnet import build_resnet18
from mia_lightning.task.load import load_task, read_split
from mia_lightning.task.sources import load_digits
from mia_lightning.task.submission import read_submission, write_submission
from mia_lightning.task.tml25_format import write_task_file
from mia_lightning.task.weights import load_target_weights

ASSIGNMENT_LOADER = textwrap.dedent(
    """
    # The assignment's way: classes defined in __main__, full torch.load.
    import json, sys, torch
    from torch.utils.data import Dataset

    class TaskDataset(Dataset):
        def __init__(self, transform=None):
            self.ids, self.imgs, self.labels, self.transform = [], [], [], transform
        def __getitem__(self, index):
            img = self.imgs[index]
            if self.transform is not None:
                img = self.transform(img)
            return self.ids[index], img, self.labels[index]
        def __len__(self):
            return len(self.ids)

    class MembershipDataset(TaskDataset):
        def __init__(self, transform=None):
            super().__init__(transform)
            self.membership = []
        def __getitem__(self, index):
            id_, img, label = super().__getitem__(index)
            return id_, img, label, self.membership[index]

    data = torch.load(sys.argv[1], weights_only=False)
    import torchvision.transforms as T
    first = data[0]
    img = first[1]
    tensor = T.ToTensor()(img) if not isinstance(img, torch.Tensor) else img
    print(json.dumps({"cls": type(data).__name__, "n": len(data), "id": first[0], "label": first[2],
                      "membership": first[3], "img_type": type(img).__name__,
                      "pixel_sum": float(tensor.sum())}))
    """
)


@pytest.fixture(scope="module")
def digits_points():
    images, labels = load_digits()
    images = torch.nn.functional.interpolate(images[:40].expand(-1, 3, -1, -1), size=(32, 32), mode="nearest")
    images = (images * 255).round() / 255
    return images.contiguous(), labels[:40]


@pytest.mark.parametrize("image_format", ["pil", "tensor"])
def test_round_trip_with_our_reader_and_the_assignments_loader(tmp_path, digits_points, image_format):
    images, labels = digits_points
    ids = [1000 + 7 * i for i in range(len(labels))]
    membership = [i % 2 for i in range(len(labels))]
    path = write_task_file(tmp_path / "pub.pt", ids, images, labels.tolist(), membership, image_format)

    split = read_split(path, "task.pub")
    assert split.ids.tolist() == ids
    assert split.labels.tolist() == labels.tolist()
    assert split.membership.tolist() == membership
    assert split.images.shape == (len(ids), 3, 32, 32)
    assert torch.allclose(split.images, images, atol=1e-6)

    script = tmp_path / "assignment_loader.py"
    script.write_text(ASSIGNMENT_LOADER)
    out = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["cls"] == "MembershipDataset"
    assert seen["n"] == len(ids) and seen["id"] == ids[0] and seen["label"] == int(labels[0])
    assert seen["membership"] == 0
    assert seen["img_type"] == ("Image" if image_format == "pil" else "Tensor")
    assert seen["pixel_sum"] == pytest.approx(float(images[0].sum()), rel=1e-5)


def test_private_file_has_unknown_membership(tmp_path, digits_points):
    images, labels = digits_points
    path = write_task_file(tmp_path / "priv_out.pt", list(range(len(labels))), images, labels.tolist(),
                           [None] * len(labels))
    split = read_split(path, "task.priv")
    assert not split.membership_known
    assert (split.membership == -1).all()


class Payload:
    """A pickle whose loading would run a shell command (creating a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvalPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload_cls", [Payload, EvalPayload])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, payload_cls):
    marker = tmp_path / "pwned"
    path = tmp_path / "pub.pt"
    torch.save({"ids": [1], "imgs": payload_cls(marker), "labels": [0], "membership": [1]}, path)
    with pytest.raises(MiaError, match="refused to load"):
        read_split(path, "task.pub")
    assert not marker.exists()
    # the same file really is dangerous under a full unpickle (which is why we never do one)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_truncated_file_gives_a_clear_error(tmp_path, digits_points):
    images, labels = digits_points
    path = write_task_file(tmp_path / "pub.pt", list(range(len(labels))), images, labels.tolist(), [0] * len(labels))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MiaError, match=r"task\.pub=.*pub\.pt: not a readable torch file"):
        read_split(path, "task.pub")


def test_wrong_field_names_give_a_clear_error(tmp_path):
    path = tmp_path / "pub.pt"
    torch.save({"identifiers": [1], "pictures": torch.zeros(1, 3, 32, 32), "labels": [0]}, path)
    with pytest.raises(MiaError, match=r"missing field\(s\) \['ids', 'imgs'\]"):
        read_split(path, "task.pub")


def test_wrong_image_size_gives_a_clear_error_unless_resizing(tmp_path):
    path = tmp_path / "pub.pt"
    torch.save({"ids": [1, 2], "imgs": torch.rand(2, 3, 28, 28), "labels": [0, 1], "membership": [0, 1]}, path)
    with pytest.raises(MiaError, match="images are 28x28, expected 32x32"):
        read_split(path, "task.pub")
    resized = read_split(path, "task.pub", resize=True)
    assert resized.images.shape == (2, 3, 32, 32)


def test_weights_class_count_is_inferred_and_mismatch_is_refused(tmp_path, digits_points):
    images, labels = digits_points
    weights = tmp_path / "01_MIA.pt"
    torch.save(build_resnet18(44).state_dict(), weights)
    state, num_classes, stem = load_target_weights(weights)
    assert (num_classes, stem) == (44, "imagenet")
    torch.save(build_resnet18(9, "cifar").state_dict(), weights)
    assert load_target_weights(weights)[1:] == (9, "cifar")

    # a task whose labels need more classes than the weights have
    torch.save(build_resnet18(5).state_dict(), weights)
    write_task_file(tmp_path / "pub.pt", list(range(40)), images, labels.tolist(), [i % 2 for i in range(40)])
    write_task_file(tmp_path / "priv.pt", list(range(40, 80)), images, labels.tolist(), [None] * 40)
    from types import SimpleNamespace

    cfg = SimpleNamespace(name="t", pub=tmp_path / "pub.pt", priv=tmp_path / "priv.pt", target=weights, truth=None,
                          image_size=32, resize=False, mean=[0.5] * 3, std=[0.5] * 3)
    with pytest.raises(MiaError, match=r"task\.pub=.*label 9 does not fit the target's 5 classes"):
        load_task(cfg)


def test_weights_that_are_not_a_resnet18_are_refused(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"fc.weight": torch.zeros(10, 128), "conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(MiaError, match=r"fc\.weight has shape \[10, 128\]"):
        load_target_weights(path)


def test_submission_round_trip_and_refusals(tmp_path):
    ids = torch.tensor([5, 17, 3])
    path = write_submission(tmp_path / "submission.csv", ids, torch.tensor([0.1, -2.0, 3.5], dtype=torch.float64))
    assert path.read_text().splitlines()[0] == "ids,score"
    assert read_submission(path) == {5: 0.1, 17: -2.0, 3: 3.5}
    with pytest.raises(MiaError, match="non-finite"):
        write_submission(tmp_path / "bad.csv", ids, torch.tensor([0.1, float("nan"), 1.0]))
    with pytest.raises(MiaError, match="duplicate"):
        write_submission(tmp_path / "bad.csv", torch.tensor([1, 1, 2]), torch.zeros(3))
    assert not (tmp_path / "bad.csv").exists()
    assert write_submission(tmp_path / "v2.csv", ids, torch.zeros(3), "id").read_text().startswith("id,score\n")
