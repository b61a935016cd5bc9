"""Augmentation queries: the views of each image every model is asked about.

LiRA scores improve when the target and shadows are queried on several augmented views
of the same point (the mirror image, small shifts); the names here are the values of
`attack.queries`: `identity`, `mirror`, `shift_DX_DY` and `mirror_shift_DX_DY`
(DX, DY signed integer pixel offsets; positive DX moves the content right), and `auto`.

A query helps only when it is a view the models were trained on (Carlini et al. query
the training augmentations): the mirror image of a model trained without flips is out of
its distribution, and its phi is mostly noise that drowns the identity view's signal
(measured on the default Fashion-MNIST task: LiRA online TPR@5%FPR 0.14 with the mirror,
0.23 without). So `auto` (the default) is `identity` plus `mirror` when `shadow.augment.flip`
is on, i.e. identity + mirror for the usual CIFAR-style recipe and identity alone for
models trained without augmentation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import Tensor

from mia_lightning.errors import MiaError

_PATTERN = re.compile(r"^(mirror_)?shift_(-?\d+)_(-?\d+)$")


@dataclass(frozen=True)
class Query:
    name: str
    mirror: bool
    dx: int
    dy: int

    def apply(self, images: Tensor) -> Tensor:
        from mia_lightning.data.augment import mirror_images, shift_images

        out = mirror_images(images) if self.mirror else images
        if self.dx or self.dy:
            out = shift_images(out, self.dx, self.dy)
        return out


def parse_query(name: str) -> Query:
    if name == "identity":
        return Query(name, False, 0, 0)
    if name == "mirror":
        return Query(name, True, 0, 0)
    match = _PATTERN.match(name)
    if match is None:
        raise MiaError(
            f"attack.queries: unknown query {name!r} (use auto, identity, mirror, shift_DX_DY or mirror_shift_DX_DY)"
        )
    return Query(name, match.group(1) is not None, int(match.group(2)), int(match.group(3)))


def expand_auto(names: list[str], train_flip: bool) -> list[str]:
    """`auto` -> identity, plus mirror when the models were trained with flips."""
    out: list[str] = []
    for name in map(str, names):
        out.extend((["identity", "mirror"] if train_flip else ["identity"]) if name == "auto" else [name])
    return out


def parse_queries(names: list[str], train_flip: bool = False) -> list[Query]:
    """The queries named in `attack.queries`; `auto` resolves against `train_flip`."""
    queries = [parse_query(name) for name in expand_auto(names, train_flip)]
    if not queries:
        raise MiaError("attack.queries: at least one query is needed (identity)")
    if len({q.name for q in queries}) != len(queries):
        raise MiaError(f"attack.queries: duplicate query in {names}")
    return queries
