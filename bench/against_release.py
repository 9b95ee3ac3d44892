"""The simulator against an earlier release, measured in the same run: customer-years per second
of each, alternated round by round, and their ratio.

This machine's speed swings by 2-3x between hours (the same code measured 1,024 and 358
customer-years/s on two days), so an absolute figure says little about a change; a ratio to
the release measured minutes apart does. The default release is the one issue 10 measured
("117 customer-years/s with `make bench`"): the engine before typed CEL.

    python -m bench.against_release [--release REV] [--rounds 3] [--customers 200]

The release is exported from this clone's git history into `.bench/release-REV/` with its own
virtualenv (made once; it needs the network to install, as `make install` does). Both sides
run the same measuring code below: the bundled playbooks of their own tree, one process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ISSUE_10_RELEASE = "2c77ae9"

# Runs inside either tree, so it uses only what both releases' bench.simulator and engine have.
MEASURE = """
import sys, time
from bench.simulator import BUNDLED, YEAR, customer, year_of_events
from engine.loader import load_project
from engine.scenario import DEFAULT_START
from engine.simulator import simulate
count = int(sys.argv[1])
project = load_project(BUNDLED)
scenarios = [(customer(n), year_of_events(n)) for n in range(count)]
simulate(project, *scenarios[0])  # warm the caches, as bench.simulator does
started = time.perf_counter()
for profile, events in scenarios:
    simulate(project, profile, events, until=DEFAULT_START + YEAR)
print(count / (time.perf_counter() - started))
"""


def release_tree(revision: str) -> Path:
    """The release's files and virtualenv, made on first use."""
    commit = subprocess.run(["git", "rev-parse", "--short", f"{revision}^{{commit}}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    tree = ROOT / ".bench" / f"release-{commit}"
    python = tree / ".venv" / "bin" / "python"
    if not python.exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        print(f"installing release {commit} into {tree.relative_to(ROOT)} (once)", flush=True)
        venv.create(tree / ".venv", with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", str(tree)], check=True)
    return tree


def customer_years_per_second(python: Path | str, tree: Path, customers: int) -> float:
    answer = subprocess.run([str(python), "-c", MEASURE, str(customers)], cwd=tree, check=True,
                            capture_output=True, text=True)
    return float(answer.stdout.strip().splitlines()[-1])


def run(revision: str, rounds: int, customers: int) -> None:
    tree = release_tree(revision)
    print()
    print(f"simulator against release {tree.name.removeprefix('release-')} "
          f"({customers} customer-years per side and round, one process, alternated)")
    print(f"{'round':>6} {'release cy/s':>13} {'this tree cy/s':>15} {'ratio':>7}")
    ratios = []
    for number in range(1, rounds + 1):
        # The order flips each round, so a machine slowing down does not favour one side.
        sides = ("release", "this") if number % 2 else ("this", "release")
        figures = {side: customer_years_per_second(
            tree / ".venv" / "bin" / "python" if side == "release" else sys.executable,
            tree if side == "release" else ROOT, customers) for side in sides}
        ratios.append(figures["this"] / figures["release"])
        print(f"{number:>6} {figures['release']:>13.1f} {figures['this']:>15.1f} {ratios[-1]:>7.2f}")
    print(f"ratio this tree/release: median {statistics.median(ratios):.2f}, "
          f"lowest {min(ratios):.2f}, highest {max(ratios):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.against_release")
    parser.add_argument("--release", default=ISSUE_10_RELEASE, help="The git revision to compare with.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--customers", type=int, default=200)
    args = parser.parse_args()
    run(args.release, args.rounds, args.customers)


if __name__ == "__main__":
    main()
