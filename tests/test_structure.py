"""The package's shape: no import cycles, small modules, and a wheel that works without the checkout."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "mia_lightning"
MAX_LINES = 300


def without_pythonpath() -> dict[str, str]:
    """This process's environment less PYTHONPATH: a child finds only what is installed."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports, counting every import statement (deferred
    imports inside functions and `if TYPE_CHECKING:` blocks included)."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in paths:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name and candidate.startswith("mia_lightning"):
                    targets.add(candidate)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert len(graph) > 40 and "mia_lightning.stages.report" in graph
    assert cycles(graph) == []


def test_the_cycle_detector_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_300_lines():
    long = {module_name(p): n for p in [*PACKAGE.rglob("*.py"), *(REPO / "benchmarks").glob("*.py")]
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_benchmarks_live_outside_the_runtime_package():
    assert not list(PACKAGE.rglob("bench*.py"))
    assert all("benchmarks" not in targets for targets in map(str, import_graph().values()))


def test_the_readmes_plain_pytest_command_collects_the_tests_that_import_benchmarks():
    """README: `.venv/bin/pytest -m "not slow" tests/test_attacks.py`. Unlike `python -m pytest`
    (make test), the pytest script does not put the cwd on sys.path: pyproject's `pythonpath` must."""
    env = without_pythonpath()
    proc = subprocess.run([str(Path(sys.executable).parent / "pytest"), "-m", "not slow", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "tests/test_attacks.py"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_composes_the_config(tmp_path):
    """`pip install .` without -e: the wheel carries conf/, and `mia` composes an experiment
    from another directory with no checkout in sight."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(REPO)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("mia_lightning-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch & co. from this venv
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = without_pythonpath()
    where = subprocess.run([str(python), "-c", "import mia_lightning.app as app; print(app.__file__, app.CONFIG_DIR)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert where.returncode == 0, where.stderr[-2000:]
    assert str(venv) in where.stdout and "_conf" in where.stdout and str(REPO) not in where.stdout, where.stdout
    proc = subprocess.run([str(venv / "bin" / "mia"), "experiment=digits_smoke", "--cfg", "job"], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "experiment_name: digits_smoke" in proc.stdout and "source: digits" in proc.stdout
    bench = subprocess.run([str(venv / "bin" / "mia-bench"), "--help"], cwd=elsewhere, env=env, capture_output=True,
                           text=True, timeout=300)
    assert bench.returncode == 0 and "mia-bench" in bench.stdout, bench.stderr[-2000:]
    launcher = subprocess.run([str(venv / "bin" / "mia"), "hydra/launcher=slurm_cpu", "--cfg", "hydra"], cwd=elsewhere,
                              env=env, capture_output=True, text=True, timeout=300)
    assert launcher.returncode == 0 and "MiaSlurmLauncher" in launcher.stdout, launcher.stderr[-2000:]


def test_the_slurm_launcher_plugin_is_found_outside_the_checkout(tmp_path):
    """Hydra finds plugins by scanning the `hydra_plugins` namespace: the installed package
    (editable here) must put mia's launcher there, not only the checkout's cwd."""
    env = without_pythonpath()
    proc = subprocess.run([sys.executable, "-m", "mia_lightning.app", "hydra/launcher=slurm_cpu", "--cfg", "hydra"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "MiaSlurmLauncher" in proc.stdout, proc.stderr[-2000:]
