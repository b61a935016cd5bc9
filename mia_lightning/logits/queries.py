"""Augmentation queries: the views of each image every model is asked about.

LiRA scores improve when the target and shadows are queried on several augmented views
of the same point (the mirror image, small shifts); the names here are the values of
`attack.queries`: `identity`, `mirror`, `shift_DX_DY` and `mirror_shift_DX_DY`
(DX, DY signed integer pixel offsets; positive DX moves the content right).
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
            f"attack.queries: unknown query {name!r} (use identity, mirror, shift_DX_DY or mirror_shift_DX_DY)"
        )
    return Query(name, match.group(1) is not None, int(match.group(2)), int(match.group(3)))


def parse_queries(names: list[str]) -> list[Query]:
    queries = [parse_query(str(name)) for name in names]
    if not queries:
        raise MiaError("attack.queries: at least one query is needed (identity)")
    if len({q.name for q in queries}) != len(queries):
        raise MiaError(f"attack.queries: duplicate query in {names}")
    return queries
