"""Static audit: every file mia writes goes through io/atomic.py (temp name, fsync, rename),
and every file it reads through io/safe_load.py or io/restricted_pickle.py.

A kill can then never leave a half-written artifact under its final name, and no reader
ever unpickles fully. The few direct writes that are not artifacts are listed here with
the reason; a new direct write or a new raw `torch.load` fails this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mia_lightning"

WRITE_CALLS = {"write_text", "write_bytes", "save", "savefig", "dump", "touch", "save_checkpoint"}
READ_CALLS = {"load", "loads", "Unpickler", "load_from_checkpoint"}

# (file relative to the package, enclosing function): why a direct write is fine there
ALLOWED_WRITES = {
    ("io/atomic.py", "atomic_path"): "the temp file itself",
    ("io/atomic.py", "atomic_write"): "the temp file itself",
    ("io/atomic.py", "atomic_torch_save"): "torch.save into atomic_write's temp file",
    ("training/checkpoint_io.py", "save_checkpoint"): "torch.save into atomic_write's temp file",
    ("training/fit.py", "append_history"): "history.jsonl: an append-only log, one short write() per line, read by no stage",
    ("training/fit.py", "on_train_epoch_end"): "trainer.save_checkpoint goes through AtomicCheckpointIO",
    ("task/tml25_format.py", "write_task_file"): "torch.save into a BytesIO, then atomic_write",
    ("report/plots.py", "save_figure"): "savefig into atomic_path's temp file",
}
ALLOWED_READS = {
    ("io/safe_load.py", "safe_torch_load"): "torch.load(weights_only=True) with the allow-list",
    ("io/restricted_pickle.py", "load_array_pickle"): "an Unpickler whose find_class allows numpy arrays only",
    ("shadows/lira_layout.py", "load_npy"): "numpy.load(allow_pickle=False): plain arrays only, object arrays refused",
}


def calls(path: Path):
    """(enclosing function name, called attribute/function name, mode argument) of every call."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = function
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = child.name
            if isinstance(child, ast.Call):
                func = child.func
                called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
                mode = ""
                if called == "open":
                    args = [a for a in child.args[1:2]] + [k.value for k in child.keywords if k.arg == "mode"]
                    mode = args[0].value if args and isinstance(args[0], ast.Constant) else "r"
                out.append((name, called, owner, mode))
            visit(child, name)

    visit(tree, "<module>")
    return out


def test_every_write_is_atomic_and_every_read_is_restricted():
    unexpected_writes, unexpected_reads = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for function, called, owner, mode in calls(path):
            if called == "open":
                writes = any(c in mode for c in "wax+")
            elif called == "save":
                writes = owner == "torch"
            elif called == "dump":
                writes = owner in ("json", "pickle", "yaml")
            else:
                writes = called in WRITE_CALLS
            if writes and (relative, function) not in ALLOWED_WRITES and (relative, "*") not in ALLOWED_WRITES:
                unexpected_writes.append(f"{relative}:{function}: {owner + '.' if owner else ''}{called}({mode})")
            reads = called in READ_CALLS and owner in ("torch", "pickle", "np", "numpy", "joblib", "dill", "ClassifierModule")
            reads = reads or called == "Unpickler"
            if reads and (relative, function) not in ALLOWED_READS:
                unexpected_reads.append(f"{relative}:{function}: {owner}.{called}")
    assert not unexpected_writes, "direct writes outside io/atomic.py:\n" + "\n".join(unexpected_writes)
    assert not unexpected_reads, "unrestricted loads:\n" + "\n".join(unexpected_reads)
