"""`mia-summarize`: a table, summary.csv and summary.png over a finished (or partial) multirun.

    mia -m shadow.count=1,2,4,8,16
    mia-summarize outputs/multirun/<date>/<time>

It finds every job under DIR (a `.hydra/overrides.yaml` next to a `metrics.json`), takes
as swept parameters the overrides whose values differ between jobs, prints one table row
per job, and writes `summary.csv` (one row per job and attack) and `summary.png`
(report/sweep_plot.py) into DIR.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mia_lightning.report.sweep import Job, SummarizeError, cell, csv_rows, find_jobs, swept_values, write_csv
from mia_lightning.report.sweep_plot import plot_summary


def print_table(jobs: list[Job], swept: list[str], attacks: list[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption="cells: TPR@5%FPR / AUC; * = the submitted attack")
    table.add_column("job", justify="right")
    for key in swept:
        table.add_column(key, justify="right")
    for attack in attacks:
        table.add_column(attack, justify="right")
    several = len({job.dir.parent for job in jobs}) > 1  # several sweeps under one dir: name the sweep too
    for job in jobs:
        name = f"{Path(job.label).parent.as_posix()}/{job.num}" if several else str(job.num)
        cells = [name, *[str(cell(job.values.get(key))) for key in swept]]
        if job.metrics is None:
            cells += ["no metrics.json (stage=shadows/logits, or not finished)"] + [""] * (len(attacks) - 1)
        else:
            for attack in attacks:
                row = job.metrics.get("attacks", {}).get(attack)
                star = "*" if attack == job.metrics.get("submit") else ""
                cells.append(f"{row['tpr@0.05']:.3f} / {row['auc']:.3f}{star}" if row else "-")
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: wide enough for one line per job
        console = Console(width=max(120, 30 + 16 * (len(swept) + len(attacks))))
    console.print(table)




def summarize(root: Path, out: Path | None = None, x_key: str | None = None, attacks: list[str] | None = None,
              plot: bool = True) -> dict[str, Any]:
    """Table, summary.csv and summary.png for the jobs under `root`; returns what it wrote."""
    root = Path(root)
    jobs = find_jobs(root)
    if not jobs:
        raise SummarizeError(f"no runs under {root} (expected job dirs with .hydra/overrides.yaml, "
                             "as `mia -m ...` writes them into outputs/multirun/<date>/<time>/)")
    finished = [job for job in jobs if job.metrics is not None]
    if not finished:
        raise SummarizeError(f"none of the {len(jobs)} runs under {root} has a metrics.json yet "
                             "(stage=shadows/logits jobs write none; rerun the sweep, or `mia stage=attacks`)")
    swept = swept_values(jobs)
    present = list(dict.fromkeys(name for job in finished for name in job.metrics.get("attacks", {})))
    if attacks:
        missing = [a for a in attacks if a not in present]
        if missing:
            raise SummarizeError(f"--attacks {','.join(missing)}: not in these runs (they have {', '.join(present)})")
        present = [a for a in present if a in attacks]
    if x_key is not None and x_key not in swept:
        raise SummarizeError(f"--x {x_key}: not a swept parameter here (swept: {', '.join(swept) or 'none'})")
    x_key = x_key or (swept[0] if swept else None)
    title = f"{root} ({len(finished)} of {len(jobs)} runs with metrics)"
    print_table(jobs, swept, present, title)
    out = Path(out) if out is not None else root
    rows = [row for row in csv_rows(jobs, swept) if row["attack"] in present]
    written = {"csv": write_csv(out / "summary.csv", rows), "swept": swept, "jobs": len(jobs),
               "finished": len(finished)}
    if plot:
        written["png"] = plot_summary(jobs, swept, present, x_key, out / "summary.png", str(root))
    print(f"wrote {written['csv']}" + (f" and {written['png']}" if plot else ""))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mia-summarize",
        description="Summarize a mia multirun: a table, summary.csv (one row per job and attack) and summary.png.")
    parser.add_argument("dir", type=Path, help="a multirun dir (outputs/multirun/<date>/<time>) or any dir above runs")
    parser.add_argument("--x", dest="x_key", default=None, help="swept parameter for the x axis (default: the first)")
    parser.add_argument("--attacks", default=None, help="comma-separated attacks to include (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="where to write summary.csv/png (default: DIR)")
    parser.add_argument("--no-plot", action="store_true", help="skip summary.png")
    parser.add_argument("--compare", default=None, metavar="A,B", help="only compare two attacks in each run under "
                        "DIR (or the run DIR): the paired bootstrap interval of A - B (report/compare.py)")
    parser.add_argument("--pub", action="store_true", help="with --compare: on pub instead of the evaluation set")
    args = parser.parse_args(argv)
    if args.compare:  # issue 13
        from mia_lightning.errors import MiaError
        from mia_lightning.report.compare import print_compare

        pair = [name.strip() for name in args.compare.split(",")]
        try:
            if len(pair) != 2 or not all(pair):
                raise MiaError("expected two attack names, A,B")
            print_compare(args.dir, pair[0], pair[1], pub=args.pub)
        except MiaError as error:
            print(f"mia-summarize: error: --compare {args.compare}: {error}", file=sys.stderr)
            sys.exit(2)
        return
    try:
        summarize(args.dir, args.out, args.x_key, args.attacks.split(",") if args.attacks else None,
                  plot=not args.no_plot)
    except SummarizeError as error:
        print(f"mia-summarize: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
