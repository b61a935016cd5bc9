"""Untrusted files: every loader refuses hostile, corrupt or nonsensical files with one MiaError.

Users feed mia task files, weights and stores other people made. Whatever is in them, each
loader (see loaders.py) must either return a validated result or raise a single-line
`MiaError` naming the file: never a traceback of another type, never run code. Payload
files create a marker when fully unpickled (proved by `test_payloads_are_armed`); the
marker must never appear when mia reads them.
"""

from __future__ import annotations

import copyreg
import gc
import io
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import fresh_store, run_mia
from mia_lightning.errors import MiaError
from mia_lightning.task.load import read_split
from mia_lightning.task.tml25_format import _classes_in_main, _MembershipDatasetWriter

from .loaders import IMAGE_SIZE, NUM_POINTS, build_loaders, small_split_files
from .payloads import CONTAINERS, fully_unpickle, payloads

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


def fuzz(examples: int) -> settings:
    """Reproducible in CI (derandomized, no example database), no per-example deadline."""
    return settings(FUZZ, max_examples=examples)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("untrusted")


@pytest.fixture(scope="module")
def files(work) -> dict[str, Path]:
    return small_split_files(work / "valid")


@pytest.fixture(scope="module")
def loaders(work, files):
    return build_loaders(work / "scratch", files)


@pytest.fixture(scope="module")
def marker(work) -> Path:
    return work / "PWNED"


@pytest.fixture(scope="module")
def payload_files(work, marker) -> list[tuple[str, Path]]:
    """Every payload in every container, written once."""
    folder = work / "payloads"
    folder.mkdir()
    out = []
    for payload in payloads(marker):
        for container, wrap in CONTAINERS.items():
            path = folder / f"{payload.name}.{container}.pt"
            path.write_bytes(wrap(payload.data))
            out.append((f"{payload.name}/{container}", path))
    return out


def expect_clean_error(load, path: Path) -> MiaError:
    """`load(path)` must raise exactly one MiaError whose message is one line."""
    try:
        load(path)
    except MiaError as error:
        text = str(error)
        assert text and "\n" not in text, text
        return error
    raise AssertionError(f"{path.name} was accepted")


def result_or_clean_error(load, path: Path) -> Any:
    """A loader may accept a file (the caller checks the result) or refuse it with one MiaError."""
    try:
        return load(path)
    except MiaError as error:
        assert str(error) and "\n" not in str(error), str(error)
        return None


# --- payloads ----------------------------------------------------------------------------


def test_payloads_are_armed(tmp_path):
    """Sanity check of the suite itself: a full unpickle of each payload file does create the
    marker, so the marker's absence below really means the payload did not run."""
    marker = tmp_path / "marker"
    unarmed = []
    for index, payload in enumerate(payloads(marker)):
        # each payload in one container (they differ in the pickle only), the first two in all
        for container, wrap in CONTAINERS.items() if index < 2 else [("raw", CONTAINERS["raw"])]:
            marker.unlink(missing_ok=True)
            try:
                fully_unpickle(container, wrap(payload.data))
            except Exception:
                pass  # the payload runs before whatever fails afterwards
            if not marker.exists():  # os.popen's shell runs asynchronously, once its pipe is collected
                gc.collect()
                deadline = time.monotonic() + 5
                while not marker.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
            if not marker.exists():
                unarmed.append(f"{payload.name}/{container}")
    assert not unarmed, unarmed
    assert len(payloads(marker)) * len(CONTAINERS) >= 200


LOADER_NAMES = ["read_split", "load_task(pub)", "load_task(priv)", "load_target_weights", "read_truth",
                "read_logits", "stored logits.pt", "keep.pt", "shadow weights.pt",
                "checkpoint (AtomicCheckpointIO)", "safe_torch_load", "cifar batch"]


@pytest.mark.parametrize("loader", LOADER_NAMES)
def test_every_loader_refuses_every_payload(loader, loaders, payload_files, marker):
    assert set(LOADER_NAMES) == set(loaders)
    for name, path in payload_files:
        error = expect_clean_error(loaders[loader], path)
        assert not marker.exists(), f"{name} ran its payload through {loader}"
        if loader != "cifar batch":  # the CIFAR reader names the folder's batch file
            assert path.name in str(error) or "weights.pt" in str(error) or "logits.pt" in str(error) \
                or "keep.pt" in str(error), str(error)


# --- exotic tensors ----------------------------------------------------------------------


def exotic_tensors() -> dict[str, torch.Tensor]:
    return {
        "broadcast-bomb": torch.zeros(1).expand(2**40),
        "meta": torch.empty(4, device="meta"),
        "sparse": torch.eye(3).to_sparse(),
        "quantized": torch.quantize_per_tensor(torch.rand(4), 0.1, 0, torch.quint8),
        "float8": torch.zeros(4, dtype=torch.float8_e4m3fn),
        "bits8": torch.zeros(4, dtype=torch.uint8).view(torch.bits8),
        "complex": torch.zeros(4, dtype=torch.complex64),
    }


@pytest.mark.parametrize("kind", list(exotic_tensors()))
def test_exotic_tensors_are_refused_before_use(kind, loaders, work):
    """Meta, sparse, quantized, bit-packed tensors and stride-0 views claiming a terabyte."""
    import warnings

    tensor = exotic_tensors()[kind]
    path = work / f"exotic-{kind}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # in every position a loader looks at: a task field, a weight, a logits tensor, a bare tensor
        torch.save({"ids": tensor, "imgs": tensor, "labels": tensor, "membership": tensor, "queries": ["identity"],
                    "logits": tensor, "fc.weight": tensor, "conv1.weight": tensor, "state_dict": {"x": tensor}}, path)
    for name, load in loaders.items():
        if name != "cifar batch":
            expect_clean_error(load, path)


# --- truncated and mutated files ---------------------------------------------------------


@pytest.fixture(scope="module")
def task_file_bytes(work) -> dict[str, bytes]:
    """Valid pub files in both formats the assignment used (PIL images; CHW float tensors)."""
    images = torch.rand(NUM_POINTS, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    out = {}
    for fmt in ("pil", "tensor"):
        path = work / f"valid-{fmt}.pt"
        write_args = ([1, 2, 3, 4, 5, 6], images, [0, 1, 2, 3, 4, 5], [1, 0, 1, 0, 1, 0])
        from mia_lightning.task.tml25_format import write_task_file

        write_task_file(path, *write_args, image_format=fmt)
        out[fmt] = path.read_bytes()
    return out


def mutate(data: bytes, edits: list[tuple[float, int]], cut: float | None) -> bytes:
    """`data` with byte values set at fractional positions, then cut to `cut` of its length."""
    out = bytearray(data)
    for where, value in edits:
        out[int(where * len(out))] = value
    return bytes(out if cut is None else out[: int(cut * len(out))])


def check_split(split) -> None:
    """What every accepted task file must turn into."""
    n = len(split)
    assert n >= 1
    assert split.images.dtype == torch.float32 and tuple(split.images.shape) == (n, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.isfinite(split.images).all() and split.images.min() >= 0 and split.images.max() <= 1
    assert split.ids.dtype == torch.int64 and torch.unique(split.ids).numel() == n
    assert split.labels.dtype == torch.int64 and split.labels.shape == (n,) and (split.labels >= 0).all()
    assert split.membership.dtype == torch.int8 and split.membership.shape == (n,)
    assert torch.isin(split.membership, torch.tensor([-1, 0, 1], dtype=torch.int8)).all()


@fuzz(150)
@given(fmt=st.sampled_from(["pil", "tensor"]), cut=st.floats(0, 1, exclude_max=True),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
       truncate=st.booleans())
def test_truncated_or_mutated_task_files(fmt, cut, edits, truncate, task_file_bytes, work, marker):
    path = work / "mutated.pt"
    path.write_bytes(mutate(task_file_bytes[fmt], edits, cut if truncate else None))
    split = result_or_clean_error(lambda p: read_split(p, "task.pub", IMAGE_SIZE), path)
    if split is not None:
        check_split(split)
    assert not marker.exists()


# --- arbitrary field values --------------------------------------------------------------

DTYPES = [torch.uint8, torch.int8, torch.int32, torch.int64, torch.float16, torch.float32, torch.float64, torch.bool]
SPECIAL = [None, "nan", "inf", "-inf", "neg", "big", "zero"]


@st.composite
def tensors(draw, shapes) -> torch.Tensor:
    shape = draw(shapes)
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(shape, generator=generator) if shape else torch.rand((), generator=generator)
    special = draw(st.sampled_from(SPECIAL))
    if special == "big":
        values = values * 1e6
    elif special == "neg":
        values = values - 2
    if dtype.is_floating_point:
        out = values.to(dtype)
        if special in ("nan", "inf", "-inf") and out.numel():
            out.view(-1)[0] = float(special)
        return out
    if dtype == torch.bool:
        return values > 0.5
    scale = 255 if dtype == torch.uint8 else 12
    low = 0 if dtype == torch.uint8 else -2
    return (values * scale).to(torch.int64).clamp(min=low).to(dtype) if dtype != torch.uint8 else (values * scale).clamp(0, 255).to(dtype)


def dims(n: int):
    return st.sampled_from([(n,), (n, 1), (), (n + 1,), (0,), (max(n - 1, 0),)])


scalars = st.one_of(st.integers(-3, 12), st.integers(-2**70, 2**70), st.booleans(), st.none(),
                    st.floats(allow_nan=True), st.text(max_size=2), st.binary(max_size=2))


def int_field(n: int):
    return st.one_of(
        st.lists(st.integers(-1, 11), min_size=n, max_size=n),
        st.lists(st.integers(0, 3), min_size=n, max_size=n),  # duplicates likely
        st.lists(scalars, max_size=n + 1),
        tensors(dims(n)),
        scalars,
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    )


class PilLike:
    """Pickles as a `PIL.Image.Image` with an arbitrary state (what PIL's own pickling writes
    is `[info, mode, size, palette?, data]`)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    @property  # type: ignore[misc]
    def __class__(self):  # pickle checks that NEWOBJ's class is the object's class
        import PIL.Image

        return PIL.Image.Image

    def __reduce_ex__(self, protocol):  # NEWOBJ PIL.Image.Image, then BUILD state (as PIL pickles)
        import PIL.Image

        return copyreg.__newobj__, (PIL.Image.Image,), self.state

    def __repr__(self) -> str:
        return f"PilLike({self.state!r})"


pil_states = st.builds(
    lambda mode, size, length, palette: [{}, mode, size, palette, bytes(length)] if palette != "omit"
    else [{}, mode, size, bytes(length)],
    st.sampled_from(["RGB", "L", "RGBA", "LA", "P", "1", "I", "F", "CMYK", 3, None]),
    st.one_of(st.tuples(st.integers(-1, 9), st.integers(-1, 9)), st.just((IMAGE_SIZE, IMAGE_SIZE)),
              st.just("8x8"), st.tuples(st.floats(), st.floats())),
    st.sampled_from([0, 1, IMAGE_SIZE * IMAGE_SIZE, 3 * IMAGE_SIZE * IMAGE_SIZE, 4 * IMAGE_SIZE * IMAGE_SIZE]),
    st.one_of(st.just("omit"), st.none(), st.lists(st.integers(-300, 300), max_size=6), st.text(max_size=3)),
)


def image_field(n: int):
    image_shapes = st.sampled_from([(3, IMAGE_SIZE, IMAGE_SIZE), (1, IMAGE_SIZE, IMAGE_SIZE), (IMAGE_SIZE, IMAGE_SIZE),
                                    (4, IMAGE_SIZE, IMAGE_SIZE), (2, IMAGE_SIZE, IMAGE_SIZE), (3, 9, IMAGE_SIZE),
                                    (3, 0, 0), (3,), (1, 3, IMAGE_SIZE, IMAGE_SIZE)])
    batch_shapes = st.sampled_from([(n, 3, IMAGE_SIZE, IMAGE_SIZE), (n, 1, IMAGE_SIZE, IMAGE_SIZE), (n, IMAGE_SIZE, IMAGE_SIZE),
                                    (n, 5, IMAGE_SIZE, IMAGE_SIZE), (n, 3, 0, 0), (0, 3, IMAGE_SIZE, IMAGE_SIZE),
                                    (n, 3, IMAGE_SIZE), (n + 1, 3, IMAGE_SIZE, IMAGE_SIZE)])
    return st.one_of(
        tensors(batch_shapes),
        st.lists(tensors(image_shapes), min_size=0, max_size=n + 1),
        st.lists(pil_states.map(PilLike), min_size=1, max_size=n),
        st.lists(st.one_of(scalars, pil_states.map(PilLike), tensors(image_shapes)), max_size=n),
        scalars,
    )


def membership_field(n: int):
    values = st.one_of(st.sampled_from([0, 1, None, 2, -1, 0.5, True, "1", float("nan")]), scalars)
    return st.one_of(st.none(), st.lists(st.sampled_from([0, 1, None]), min_size=n, max_size=n),
                     st.lists(values, max_size=n + 1), tensors(dims(n)), scalars)


REMOVE = object()  # a perturbation that deletes the field


@st.composite
def near_valid(draw, valid: dict[str, Any], perturb: dict[str, Any]) -> dict[str, Any]:
    """`valid` with one or two of its fields replaced by an arbitrary (likely wrong) value."""
    out = dict(valid)
    for name in draw(st.lists(st.sampled_from(sorted(perturb)), min_size=1, max_size=2, unique=True)):
        value = draw(perturb[name])
        if value is REMOVE:
            out.pop(name, None)
        else:
            out[name] = value
    return out


@st.composite
def task_fields(draw) -> dict[str, Any]:
    n = draw(st.integers(1, 4))
    valid = {"ids": draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True)),
             "imgs": draw(tensors(st.just((n, 3, IMAGE_SIZE, IMAGE_SIZE)))).float().clamp(0, 1).nan_to_num(0.5),
             "labels": draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)),
             "membership": draw(st.one_of(st.none(), st.lists(st.sampled_from([0, 1, None]), min_size=n, max_size=n)))}
    perturb = {name: st.one_of(strategy, st.just(REMOVE)) for name, strategy in
               (("ids", int_field(n)), ("imgs", image_field(n)), ("labels", int_field(n)),
                ("membership", membership_field(n)))}
    perturb["extra"] = scalars
    fields = draw(near_valid(valid, perturb))
    if draw(st.booleans()) and "imgs" in fields:
        fields["images"] = fields.pop("imgs")
    return fields


def save_fields(path: Path, fields: dict[str, Any], as_dataset: bool) -> None:
    buffer = io.BytesIO()
    if as_dataset:
        dataset = _MembershipDatasetWriter()
        dataset.__dict__.update({k: v for k, v in fields.items() if isinstance(k, str)})
        with _classes_in_main():
            torch.save(dataset, buffer)
    else:
        torch.save(fields, buffer)
    path.write_bytes(buffer.getvalue())


@fuzz(300)
@given(fields=task_fields(), as_dataset=st.booleans())
def test_task_files_with_arbitrary_fields(fields, as_dataset, work):
    """Wrong dtypes and shapes, NaN/inf pixels, duplicate ids, missing fields, bad labels,
    malformed PIL images: either a valid split or one MiaError."""
    path = work / "fields.pt"
    save_fields(path, fields, as_dataset)
    split = result_or_clean_error(lambda p: read_split(p, "task.pub", IMAGE_SIZE), path)
    if split is not None:
        check_split(split)


def valid_fields(n: int = 4) -> dict[str, Any]:
    return {"ids": list(range(n)), "imgs": torch.rand(n, 3, IMAGE_SIZE, IMAGE_SIZE), "labels": [0] * n,
            "membership": [1, 0] * (n // 2)}


@pytest.mark.parametrize("change, message", [
    ({"ids": [1, 1, 2, 3]}, "duplicate id 1"),
    ({"labels": [0, -1, 0, 0]}, "negative label"),
    ({"labels": [0.0, 1.0, 0.0, 0.0]}, "'labels'[0] must be an int"),
    ({"ids": torch.tensor([0.5, 1, 2, 3])}, "'ids' must hold integers"),
    ({"imgs": torch.full((4, 3, IMAGE_SIZE, IMAGE_SIZE), float("nan"))}, "NaN or infinite"),
    ({"imgs": torch.full((4, 3, IMAGE_SIZE, IMAGE_SIZE), float("inf"))}, "NaN or infinite"),
    ({"imgs": torch.rand(4, 3, IMAGE_SIZE, IMAGE_SIZE) * 255}, "expected raw pixels in [0, 1]"),
    ({"imgs": torch.rand(4, 3, 16, 16)}, "task.resize=true"),
    ({"imgs": torch.rand(4, 3, IMAGE_SIZE, IMAGE_SIZE).to(torch.int32)}, "uint8 or float"),
    ({"imgs": torch.rand(4, 3, 0, 0)}, "holds no pixels"),
    ({"imgs": torch.rand(0, 3, IMAGE_SIZE, IMAGE_SIZE)}, "holds no pixels"),
    ({"membership": [1, 0, 2, 0]}, "must be 0, 1 or None"),
    ({"membership": [1, 0]}, "different lengths"),
    ({"labels": None}, "'labels' must be a list of int"),
], ids=lambda value: str(value)[:40] if isinstance(value, str) else None)
def test_task_field_errors_name_the_problem(change, message, work):
    path = work / "named.pt"
    fields = {**valid_fields(), **change}
    save_fields(path, fields, as_dataset=True)
    error = expect_clean_error(lambda p: read_split(p, "task.pub", IMAGE_SIZE), path)
    assert message in str(error) and "task.pub=" in str(error), str(error)


def test_missing_fields_are_named(work):
    path = work / "missing.pt"
    save_fields(path, {"ids": [1], "membership": [1]}, as_dataset=False)
    error = expect_clean_error(lambda p: read_split(p, "task.pub", IMAGE_SIZE), path)
    assert "missing field(s) ['imgs', 'labels']" in str(error)


def test_whole_task_consistency_errors(files, work, loaders):
    """Files that are each fine but do not fit together."""
    from mia_lightning.task.load import load_task
    from .loaders import task_cfg

    cases = []
    pub_bad_label = work / "pub-label-99.pt"
    save_fields(pub_bad_label, {**valid_fields(), "labels": [0, 1, 99, 0]}, as_dataset=True)
    cases.append(({"pub": pub_bad_label}, "label 99 does not fit the target's 10 classes"))
    pub_unknown = work / "pub-unknown.pt"
    save_fields(pub_unknown, {**valid_fields(), "membership": None}, as_dataset=True)
    cases.append(({"pub": pub_unknown}, "every public point needs membership"))
    cases.append(({"priv": files["pub"]}, "share 3 ids"))
    truth_short = work / "truth-short.pt"
    torch.save({"ids": torch.tensor([20]), "membership": torch.tensor([1])}, truth_short)
    cases.append(({"truth": truth_short}, "no membership for 2 private ids"))
    cases.append(({"mean": [0.5], "std": [0.0, 1.0, 1.0]}, "task.mean and task.std"))
    for override, message in cases:
        try:
            load_task(task_cfg(files, **override), read_truth_file=True)
        except MiaError as error:
            assert message in str(error) and "\n" not in str(error), str(error)
        else:
            raise AssertionError(f"{override} accepted")


# --- weights, truth, logits, keep, checkpoints -------------------------------------------

weight_values = st.one_of(tensors(st.sampled_from([(10, 512), (64, 3, 7, 7), (64, 3, 3, 3), (3,), (), (10, 511)])),
                          scalars, st.lists(scalars, max_size=2))


@st.composite
def weight_objects(draw) -> Any:
    keys = st.sampled_from(["fc.weight", "conv1.weight", "module.fc.weight", "bn1.weight", "fc.bias", 7, "x"])
    state = draw(st.dictionaries(keys, weight_values, max_size=4))
    wrapper = draw(st.sampled_from([None, "state_dict", "model_state_dict", "model", "other"]))
    obj: Any = {wrapper: state} if wrapper else state
    return draw(st.one_of(st.just(obj), scalars, st.lists(st.just(obj), max_size=2), tensors(dims(3))))


@fuzz(120)
@given(obj=weight_objects())
def test_target_weights_with_arbitrary_contents(obj, loaders, work):
    path = work / "weights.pt"
    torch.save(obj, path)
    for name in ("load_target_weights", "shadow weights.pt"):
        result = result_or_clean_error(loaders[name], path)
        assert result is None  # no fuzzed dict is a complete ResNet18


@pytest.fixture(scope="module")
def resnet_state(files) -> dict[str, torch.Tensor]:
    return torch.load(files["target"], weights_only=True)


def _edit(state: dict[str, torch.Tensor], how: str) -> Any:
    state = dict(state)
    if how == "wrong shape":
        state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    elif how == "nan":
        state["layer2.0.bn1.weight"] = torch.full_like(state["layer2.0.bn1.weight"], float("nan"))
    elif how == "inf":
        state["fc.bias"] = torch.full_like(state["fc.bias"], float("inf"))
    elif how == "missing key":
        del state["layer4.1.conv2.weight"]
    elif how == "extra key":
        state["head.weight"] = torch.zeros(2)
    elif how == "3x3 stem, 5x5 kernel":
        state["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    elif how == "fc of 0 classes":
        state["fc.weight"], state["fc.bias"] = torch.zeros(0, 512), torch.zeros(0)
    return state


@pytest.mark.parametrize("how", ["wrong shape", "nan", "inf", "missing key", "extra key", "3x3 stem, 5x5 kernel"])
def test_target_weights_that_almost_fit(how, resnet_state, loaders, work):
    path = work / "almost.pt"
    torch.save(_edit(resnet_state, how), path)
    for name in ("load_target_weights", "shadow weights.pt"):
        expect_clean_error(loaders[name], path)


def test_wrapped_and_prefixed_weights_are_accepted(resnet_state, loaders, work):
    path = work / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in resnet_state.items()}}, path)
    state, num_classes, stem = loaders["load_target_weights"](path)
    assert num_classes == 10 and stem == "imagenet" and set(state) == set(resnet_state)


TRUTH = {"ids": torch.tensor([20, 21, 22]), "membership": torch.tensor([1, 0, 1], dtype=torch.int8)}


@fuzz(120)
@given(obj=st.one_of(
    near_valid(TRUTH, {"ids": st.one_of(tensors(dims(3)), st.lists(scalars, max_size=3), scalars, st.just(REMOVE)),
                       "membership": st.one_of(tensors(dims(3)), st.lists(scalars, max_size=3), scalars, st.just(REMOVE))}),
    scalars, st.lists(tensors(dims(3)), max_size=2)))
def test_truth_with_arbitrary_contents(obj, loaders, work):
    path = work / "truth.pt"
    torch.save(obj, path)
    truth = result_or_clean_error(loaders["read_truth"], path)
    if truth is not None:
        assert truth.dtype == torch.int8 and truth.shape == (3,) and ((truth == 0) | (truth == 1)).all()


LOGITS = {"queries": ["identity", "mirror"], "logits": torch.zeros(NUM_POINTS, 2, 10)}


@fuzz(150)
@given(obj=st.one_of(
    near_valid(LOGITS, {
        "queries": st.one_of(st.just(["identity"]), st.just(["identity", "identity"]), st.just(["mirror", "identity"]),
                             st.lists(scalars, max_size=3), scalars, st.just(REMOVE)),
        "logits": st.one_of(tensors(st.sampled_from([(NUM_POINTS, 2, 10), (NUM_POINTS, 1, 10), (NUM_POINTS, 2),
                                                     (NUM_POINTS + 1, 2, 10), (NUM_POINTS, 2, 0), (NUM_POINTS, 2, 1),
                                                     (0, 2, 10), ()])), scalars, st.just(REMOVE))}),
    tensors(dims(NUM_POINTS)), scalars))
def test_logits_files_with_arbitrary_contents(obj, loaders, work):
    path = work / "logits.pt"
    torch.save(obj, path)
    for name in ("read_logits", "stored logits.pt"):
        result = result_or_clean_error(loaders[name], path)
        if result is None:
            continue
        values = result.values() if isinstance(result, dict) else [result]
        for tensor in values:
            assert tensor.shape[0] == NUM_POINTS and tensor.dtype == torch.float32 and torch.isfinite(tensor).all()


@fuzz(80)
@given(batch=st.one_of(
    near_valid({"data": "uint8", "labels": [1, 2]}, {
        "data": st.one_of(st.sampled_from(["uint8", "float64", "object", "int64", "1d", "wrong width", "3d"]),
                          scalars, st.just(REMOVE)),
        "labels": st.one_of(st.lists(scalars, max_size=3), scalars, st.just(["a", "b"]), st.just([1]), st.just(REMOVE))}),
    scalars, st.lists(scalars, max_size=2)), byte_keys=st.booleans())
def test_cifar_batches_with_arbitrary_contents(batch, byte_keys, loaders, work):
    """CIFAR-10 python batches (read with the array-only unpickler) holding the wrong things."""
    import numpy as np

    arrays = {"uint8": np.zeros((2, 3072), np.uint8), "float64": np.zeros((2, 3072)), "object": np.zeros((2, 3072), object),
              "int64": np.zeros((2, 3072), np.int64), "1d": np.zeros(3072, np.uint8), "wrong width": np.zeros((2, 100), np.uint8),
              "3d": np.zeros((2, 3072, 1), np.uint8)}
    if isinstance(batch, dict):
        batch = {(k.encode() if byte_keys else k): (arrays.get(v, v) if k == "data" and isinstance(v, str) else v)
                 for k, v in batch.items()}
    path = work / "cifar_batch"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    result = result_or_clean_error(loaders["cifar batch"], path)
    assert result is None  # the other five batches are missing: at best the next one is reported missing


@fuzz(100)
@given(keep=st.one_of(tensors(st.sampled_from([(2, NUM_POINTS), (2, NUM_POINTS), (4, NUM_POINTS), (1, NUM_POINTS),
                                                (2, NUM_POINTS + 1), (NUM_POINTS,), (0, NUM_POINTS), (2, NUM_POINTS, 1), ()])),
                      scalars, st.lists(tensors(dims(2)), max_size=2)))
def test_keep_masks_with_arbitrary_contents(keep, loaders, work):
    path = work / "keep.pt"
    torch.save(keep, path)
    mask = result_or_clean_error(loaders["keep.pt"], path)
    if mask is not None:
        assert mask.dtype == torch.bool and mask.shape == (2, NUM_POINTS) and (mask.sum(0) == 1).all()


@pytest.fixture(scope="module")
def checkpoint_bytes() -> bytes:
    """A Lightning-shaped checkpoint (small model), as AtomicCheckpointIO writes it (torch.save)."""
    net = torch.nn.Linear(4, 2)
    checkpoint = {"epoch": 1, "global_step": 5, "pytorch-lightning_version": "2.6", "state_dict": net.state_dict(),
                  "loops": {"fit_loop": {"epoch_progress": {"total": {"ready": 2}}}},
                  "optimizer_states": [torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9).state_dict()],
                  "lr_schedulers": [], "callbacks": {"ModelCheckpoint{'monitor': None}": {"dirpath": "/x"}},
                  "hyper_parameters": {"num_classes": 2, "mean": [0.5]}}
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


@fuzz(100)
@given(cut=st.floats(0, 1, exclude_max=True), truncate=st.booleans(),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6))
def test_mutated_or_truncated_checkpoints(cut, truncate, edits, checkpoint_bytes, loaders, work):
    path = work / "mutated.ckpt"
    path.write_bytes(mutate(checkpoint_bytes, edits, cut if truncate else None))
    result = result_or_clean_error(loaders["checkpoint (AtomicCheckpointIO)"], path)
    assert result is None or isinstance(result, dict)


# --- random pickle programs --------------------------------------------------------------


def opcode_vocabulary(marker: Path) -> list[bytes]:
    shell = f"touch '{marker}'".encode()
    strings = [b"X" + len(s).to_bytes(4, "little") + s for s in (shell, b"ids", b"imgs", b"labels", b"system", b"os")]
    globals_ = [b"c" + m + b"\n" + n + b"\n" for m, n in [
        (b"os", b"system"), (b"builtins", b"eval"), (b"builtins", b"getattr"), (b"builtins", b"__import__"),
        (b"__main__", b"MembershipDataset"), (b"PIL.Image", b"Image"), (b"torch._utils", b"_rebuild_tensor_v2"),
        (b"collections", b"OrderedDict"), (b"torch", b"FloatStorage"), (b"builtins", b"set"), (b"torch", b"Size"),
        (b"subprocess", b"getoutput"), (b"torchvision.transforms", b"ToTensor")]]
    return [*strings, *globals_,
            b"(", b"t", b"l", b"d", b")", b"]", b"}", b"a", b"e", b"s", b"u", b"R", b"b", b"\x81", b"\x92", b"\x93",
            b"0", b"1", b"2", b"\x85", b"\x86", b"\x87", b"\x94", b"q\x00", b"h\x00", b"K\x01", b"K\xff", b"J\xff\xff\xff\x7f",
            b"N", b"\x88", b"\x89", b"Q", b"P0\n", b"\x82\x01", b"i__main__\nMembershipDataset\n", b"o",
            b"\x95\x05\x00\x00\x00\x00\x00\x00\x00", b"C\x03abc", b"\x8c\x02os", b"\x8c\x06system", b"\x80\x02", b"\x80\x05"]


@fuzz(150)
@given(program=st.lists(st.integers(0, 10**6), min_size=1, max_size=24), container=st.sampled_from(sorted(CONTAINERS)),
       loader=st.sampled_from(LOADER_NAMES))
def test_random_pickle_programs(program, container, loader, loaders, marker, work):
    """Random opcode sequences mixing dangerous globals with every construction opcode."""
    vocabulary = opcode_vocabulary(marker)
    data = b"".join(vocabulary[i % len(vocabulary)] for i in program) + b"."
    path = work / "program.pt"
    path.write_bytes(CONTAINERS[container](data))
    result_or_clean_error(loaders[loader], path)
    assert not marker.exists()


# --- through Lightning's resume and the CLI ----------------------------------------------


def test_malicious_last_ckpt_in_the_store_is_refused_on_resume(tiny_task_dir, tmp_path, marker, payload_files):
    """A `last.ckpt` planted in a shadow's directory (a shared store): Lightning's resume goes
    through AtomicCheckpointIO, which refuses it; the run ends in one MiaError."""
    import shutil

    from conftest import TINY, make_cfg
    from mia_lightning.pipeline import open_run, run_pipeline
    from mia_lightning.stages.shadows import shadow_set
    from mia_lightning.stages.task import obtain_task

    fresh_store(tiny_task_dir, tmp_path)
    cfg = make_cfg(*TINY, "stage=shadows", "shadow.only=0", f"store.root={tmp_path}")
    run = open_run(cfg, tmp_path / "run")
    ctx = shadow_set(run, obtain_task(run))
    evil = dict(payload_files)["newobj-build-setstate-p2/zip"]
    checkpoint = ctx.store.shadow_dir(0) / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    shutil.copyfile(evil, checkpoint)
    with pytest.raises(MiaError, match="checkpoint=.*last.ckpt: refused to load"):
        run_pipeline(cfg, tmp_path / "run")
    assert not marker.exists()
    assert not ctx.store.is_done(0)


def test_malicious_task_file_through_the_cli(files, payload_files, marker, tmp_path):
    """`mia experiment=tml25 task.pub=<os.system payload> ...`: exit 2, one stderr line, no payload."""
    which, payload = "pub", "reduce-os.system-p2/zip"
    paths = {key: files[key] for key in ("pub", "priv", "target")}
    paths[which] = dict(payload_files)[payload]
    proc = run_mia("experiment=tml25", *(f"task.{key}={path}" for key, path in paths.items()),
                   f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}", "task.image_size=8",
                   check=False, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"mia: error: task.{which}=") and "refused to load" in lines[0], lines
    assert not marker.exists() and not (Path.cwd() / "PWNED").exists()
