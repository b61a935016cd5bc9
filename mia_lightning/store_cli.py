"""`mia-store`: bring shadows trained elsewhere into the store, hand mia's shadows to other tools,
or free the disk that finished shadows no longer need.

    mia-store import --format lira DIR --name NAME [--queries identity,mirror] [mia overrides ...]
    mia-store export --format lira DIR [mia overrides ...]
    mia-store prune STORE_ROOT [--dry-run]

The overrides are ordinary `mia` ones (`task=...`, `shadow.count=16`, `store.entry=...`):
they say which task (and, for export, which store entry) is meant. Import reads DIR in the
LiRA layout (shadows/lira_layout.py: one directory per model with keep.npy and logits.npy
[N, A, C], rows in the pool's order, pub then priv, or reordered by an `ids.npy` next to
them), checks it against the task and writes the entry `imported-NAME`; then
`mia store.entry=NAME ...` attacks with it. Export writes `DIR/shadows/experiment-NNN/`
(the directory to give lira-pytorch's `--savedir`), plus `DIR/target/logits.npy`,
`DIR/ids.npy`, `DIR/labels.npy`, `DIR/membership.npy` (pub's labels, -1 for priv) and
`DIR/queries.txt`, so an export imports back as the same shadows. Prune deletes the resume
checkpoint (`checkpoints/last.ckpt`) of every finished model in a store (shadows/prune.py).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_write_text
from mia_lightning.shadows.lira_layout import load_npy, read_lira, save_npy, write_lira

DEFAULT_QUERIES = {1: ["identity"], 2: ["identity", "mirror"]}


def _run_and_task(overrides: list[str], run_dir: Path):
    """The checked config of `overrides` as a Run, and its task (simulated once if needed)."""
    from hydra import compose, initialize_config_dir

    from mia_lightning.app import CONFIG_DIR
    from mia_lightning.pipeline import open_run
    from mia_lightning.stages import task as task_stage

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    run = open_run(cfg, run_dir)
    return run, task_stage.obtain_task(run)


def _pool_order(source: Path, pool_ids: torch.Tensor) -> torch.Tensor | None:
    """Row -> pool index permutation from DIR/ids.npy (None: rows are already in pool order)."""
    path = source / "ids.npy"
    if not path.is_file():
        return None
    ids = load_npy(path)
    if ids.shape != (pool_ids.numel(),) or not np.issubdtype(ids.dtype, np.integer):
        raise MiaError(f"{path}: must hold the {pool_ids.numel()} pool ids as integers, got {ids.dtype} {list(ids.shape)}")
    where = {int(i): n for n, i in enumerate(pool_ids.tolist())}
    missing = [int(i) for i in ids if int(i) not in where]
    if missing or len(set(ids.tolist())) != ids.size:
        raise MiaError(f"{path}: not a permutation of the task's pool ids (e.g. unknown id {missing[:1]})")
    return torch.tensor([where[int(i)] for i in ids])


def import_lira(source: Path, name: str, queries: list[str] | None, overrides: list[str], replace: bool) -> Path:
    from mia_lightning.shadows.fingerprint import task_fingerprint
    from mia_lightning.shadows.imported import write_entry

    with tempfile.TemporaryDirectory(prefix="mia-store-") as scratch:
        run, task = _run_and_task(overrides, Path(scratch))
    models_dir = source / "shadows" if (source / "shadows").is_dir() else source
    if queries is None and (source / "queries.txt").is_file():
        queries = (source / "queries.txt").read_text().split()
    shadows = read_lira(models_dir, task.pool_size, task.num_classes, len(queries) if queries else None)
    logits, keep = shadows.logits, shadows.keep
    order = _pool_order(source, task.pool_ids)
    if order is not None:  # row r is pool point order[r]: put it there
        logits, keep = torch.empty_like(logits).index_copy_(1, order, logits), torch.empty_like(keep).index_copy_(1, order, keep)
    if (source / "labels.npy").is_file():
        labels = torch.from_numpy(load_npy(source / "labels.npy").astype(np.int64))
        labels = labels if order is None else torch.empty_like(labels).index_copy_(0, order, labels)
        if not torch.equal(labels, task.pool_labels):
            raise MiaError(f"{source / 'labels.npy'}: differs from the task's labels in "
                           f"{int((labels != task.pool_labels).sum())} places (another pool, or another order?)")
    if queries is None:
        if logits.shape[2] not in DEFAULT_QUERIES:
            raise MiaError(f"{models_dir}: logits have {logits.shape[2]} queries; name them with --queries")
        queries = DEFAULT_QUERIES[logits.shape[2]]
    fingerprint = task_fingerprint(task.pool_ids, task.pool_labels, task.pool_images)
    return write_entry(run.store_root, fingerprint, name, logits, keep, task.pool_labels, queries,
                       {"format": "lira", "source": str(source.resolve()), "models_from": shadows.sources},
                       replace=replace)


def export_lira(target: Path, overrides: list[str]) -> Path:
    from mia_lightning.stages import calibrate, logits as logits_stage, shadows as shadows_stage

    with tempfile.TemporaryDirectory(prefix="mia-store-") as scratch:
        run, task = _run_and_task(overrides, Path(scratch))
        choice = calibrate.shadow_recipe(run, task)
        shadow_set = shadows_stage.shadow_set(run, task, choice.recipe, choice=choice)
        logit_set = logits_stage.collect_logits(run, task, shadow_set)
    write_lira(target / "shadows", logit_set.shadows, logit_set.keep)
    save_npy(target / "target" / "logits.npy", logit_set.target.numpy())
    save_npy(target / "ids.npy", task.pool_ids.numpy().astype(np.int64))
    save_npy(target / "labels.npy", task.pool_labels.numpy().astype(np.int64))
    save_npy(target / "membership.npy", task.known_membership.numpy().astype(np.int8))
    atomic_write_text(target / "queries.txt", "\n".join(logit_set.queries) + "\n")
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mia-store", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("import", "export", "prune"))
    parser.add_argument("dir", type=Path, help="the LiRA-layout directory to read (import) or write (export); "
                        "prune: the store's root")
    parser.add_argument("--format", default="lira", choices=("lira",), help="the layout (lira: keep.npy + logits.npy)")
    parser.add_argument("--name", default=None, help="import: the entry's name, used as store.entry=NAME")
    parser.add_argument("--queries", default=None, help="import: comma-separated mia query names of the A logits "
                        "columns (default: queries.txt, else identity / identity,mirror)")
    parser.add_argument("--replace", action="store_true", help="import: replace an entry of the same name")
    parser.add_argument("--dry-run", action="store_true", help="prune: list what would go, delete nothing")
    parser.add_argument("overrides", nargs="*", help="mia config overrides (task=..., store.root=..., ...)")
    args = parser.parse_intermixed_args(argv)  # options may follow the overrides, and the reverse
    try:
        if args.action == "import":
            if not args.name:
                raise MiaError("mia-store import needs --name NAME (then run mia with store.entry=NAME)")
            queries = args.queries.split(",") if args.queries else None
            where = import_lira(args.dir, args.name, queries, args.overrides, args.replace)
            same = "".join(f" {shlex.quote(o)}" for o in args.overrides)  # the entry belongs to this task and store
            print(f"imported {args.dir} as {where}; attack it with: mia store.entry={args.name} stage=attacks{same}")
        elif args.action == "prune":
            if args.overrides:
                raise MiaError(f"mia-store prune takes the store's root alone, not overrides ({args.overrides[0]})")
            from mia_lightning.shadows.prune import prune_store

            print(prune_store(args.dir, args.dry_run).line(args.dir, args.dry_run))
        else:
            where = export_lira(args.dir, args.overrides)
            print(f"exported to {where} (LiRA tools: --savedir {where / 'shadows'})")
    except Exception as error:  # MiaError, and Hydra's one-line-able override errors
        from mia_lightning.app import _is_config_error, one_line

        if os.environ.get("MIA_DEBUG", "") not in ("", "0") or not (isinstance(error, MiaError)
                                                                   or _is_config_error(error)):
            raise
        print(f"mia-store: error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
