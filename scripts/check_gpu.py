#!/usr/bin/env python3
"""`make check-gpu`: everything a CUDA GPU has to show, in one run, into one JSON file.

1. the GPU tests (tests/gpu: a shadow's fit and resume on cuda, stacked G=2 on cuda against
   plain ResNet18s, device augmentation, a tiny end-to-end run with trainer=gpu, a recipe
   search with two pilot workers);
2. `mia-bench --device cuda --stack 1 2 4 8 16`: training images/s of the hand loop, the
   Lightning path, the plain path and each stack size, inference images/s, and the attack
   stage for 64 shadows x 40,000 points x 2 queries x 44 classes (the attacks run on the CPU).

    make check-gpu                                   # = the line below, bounded by a timeout
    .venv/bin/python scripts/check_gpu.py --json outputs/check_gpu.json
    .venv/bin/python scripts/check_gpu.py --cpu-dry-run --json /tmp/check.json   # the script itself, no GPU

Under 8 minutes on one GPU. Exit 0 when the tests passed and the benchmark ran, 1 when
not, 2 without a GPU. The JSON holds the machine, each test's outcome and time, the
benchmark's report and the headline figures (what the README's Performance section quotes);
each step's full output goes to `<json name>_logs/` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "cuda_runtime": torch.version.cuda, "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}", bf16=torch.cuda.is_bf16_supported())
    return info


def run_step(name: str, command: list[str], timeout_s: float, log: Path) -> dict[str, Any]:
    """Run one step with its output in `log`; its exit status and seconds (124: timed out)."""
    print(f"check-gpu: {name}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    with open(log, "w") as out:
        try:
            code = subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = 124
    seconds = round(time.monotonic() - started, 1)
    print(f"check-gpu: {name}: exit {code} in {seconds} s (log: {log})", flush=True)
    return {"exit": code, "seconds": seconds, "log": str(log)}


def test_outcomes(junit: Path) -> dict[str, dict[str, Any]]:
    """pytest's JUnit XML -> {test name: {"outcome", "seconds", "message"}}."""
    if not junit.is_file():
        return {}
    outcomes = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = (child.get("message") or "").splitlines()[0][:300] if child.get("message") else ""
        outcomes[case.get("name", "?")] = {"outcome": outcome, "seconds": round(float(case.get("time", 0)), 2),
                                           "message": message}
    return outcomes


def headline(bench: dict[str, Any]) -> dict[str, Any]:
    """The figures the README quotes, from a mia-bench report."""
    training = bench.get("training", {})
    return {
        "images_per_s_per_model": {name: round(v["images_per_s_per_model"], 1) for name, v in training.items()},
        "shadow_images_per_s": {name: round(v["shadow_images_per_s"], 1) for name, v in training.items()},
        "lightning_over_hand": round(bench["targets"]["lightning_over_hand"], 3) if "targets" in bench else None,
        "stack_speedup_over_lightning": {name: round(ratio, 3) for name, ratio in
                                         bench.get("targets", {}).get("stack_speedup_over_lightning", {}).items()},
        "best_stack": bench.get("targets", {}).get("best_stack"),
        "inference_images_per_s": round(bench["inference"]["images_per_s"], 1) if "inference" in bench else None,
        "attack_stage_64_shadows_s": (bench.get("attack") or {}).get("seconds", {}).get("total"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default="outputs/check_gpu.json", help="where the figures go")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="check this script without a GPU: the GPU tests skip, a tiny CPU benchmark runs")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.cpu_dry_run:
        print("check-gpu: error: no CUDA device here (torch.cuda.is_available() is False); "
              "run it on a GPU machine, or --cpu-dry-run to check the script", file=sys.stderr)
        return 2
    started = time.monotonic()
    out = Path(args.json)
    work = out.with_name(out.stem + "_logs")  # each step's full output, next to the figures
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "dry_run": args.cpu_dry_run, "steps": {}}
    junit = work / "gpu_tests.xml"
    report["steps"]["tests"] = run_step("GPU tests", [
        str(BIN / "python"), "-m", "pytest", "tests/gpu", "-p", "no:cacheprovider", "-rA", f"--junitxml={junit}",
    ], 240, work / "gpu_tests.log")
    report["tests"] = test_outcomes(junit)
    bench_json = work / "bench.json"
    bench_args = (["--device", "cpu", "--stack", "1", "2", "--steps", "6", "--warmup", "1", "--repeats", "1",
                   "--images", "512"] if args.cpu_dry_run else
                  ["--device", "cuda", "--stack", "1", "2", "4", "8", "16", "--steps", "40", "--warmup", "5",
                   "--repeats", "2"])
    report["steps"]["bench"] = run_step("mia-bench", [str(BIN / "mia-bench"), *bench_args, "--json", str(bench_json)],
                                        210, work / "bench.log")
    report["bench"] = json.loads(bench_json.read_text()) if bench_json.is_file() else None
    report["figures"] = headline(report["bench"]) if report["bench"] else None
    report["seconds"] = round(time.monotonic() - started, 1)
    if args.cpu_dry_run:  # the GPU tests skip as a module: pytest's exit 5, "no tests ran"
        tests_ok = report["steps"]["tests"]["exit"] in (0, 5)
    else:
        tests_ok = report["steps"]["tests"]["exit"] == 0 and bool(report["tests"]) and all(
            t["outcome"] == "passed" for t in report["tests"].values())
    report["ok"] = bool(tests_ok and report["steps"]["bench"]["exit"] == 0 and report["bench"])
    out.write_text(json.dumps(report, indent=2) + "\n")
    failed = [name for name, t in report["tests"].items() if t["outcome"] not in ("passed", "skipped")]
    print(f"check-gpu: {'ok' if report['ok'] else 'FAILED'} in {report['seconds']} s; "
          f"tests: {sum(t['outcome'] == 'passed' for t in report['tests'].values())} passed"
          f"{', failed: ' + ', '.join(failed) if failed else ''}; figures: {out}")
    if report["figures"]:
        print(json.dumps(report["figures"], indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
