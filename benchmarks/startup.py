"""Start-up cost of the CLI: wall time and peak RSS of ``spy-rl health``, ``version`` and ``--help``.

The container liveness probe runs ``spy-rl health`` every 30 s, so its start-up is paid all day.
Each command runs ``--repeats`` times in a fresh interpreter; the median wall time and the
largest peak RSS (``wait4``'s ``ru_maxrss``, this child alone) are reported, next to a reference
measured in the same run: importing the CLI together with torch and stable-baselines3, which is
what every command paid before start-up by need. Targets: health <= 0.3 s and <= 80 MB,
--help <= 0.5 s.

Run from the repository root:  python -m benchmarks.startup [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HEALTH_TARGET = (0.3, 80.0)  # seconds, MB
HELP_TARGET_S = 0.5
CLI = "from finrl.applications.spy_rl_trading.cli import main; main()"
REFERENCE = "import finrl.applications.spy_rl_trading.cli, torch, stable_baselines3"


@dataclass(frozen=True)
class Startup:
    name: str
    seconds: float  # median wall time
    peak_mb: float  # largest peak resident set size over the repeats


def measure(name: str, argv: list[str], repeats: int, cwd: Path) -> Startup:
    times, peaks = [], []
    env = {**os.environ, "SPY_ENV_FILE": str(cwd / "absent.env")}
    for _ in range(repeats):
        started = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(child.pid, 0)
        times.append(time.perf_counter() - started)
        peaks.append(usage.ru_maxrss / 1024)  # kB on Linux
        child.returncode = 0  # reaped by wait4
    return Startup(name, statistics.median(times), max(peaks))


def run(repeats: int = 5) -> list[Startup]:
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        commands = {
            "spy-rl health": [python, "-c", CLI, "health", "--logs-dir", str(cwd)],
            "spy-rl version": [python, "-c", CLI, "version"],
            "spy-rl --help": [python, "-c", CLI, "--help"],
            "python (bare interpreter)": [python, "-c", "pass"],
            "reference: CLI + torch + SB3 imports": [python, "-c", REFERENCE],
        }
        return [measure(name, argv, repeats, cwd) for name, argv in commands.items()]


def report(results: list[Startup]) -> list[str]:
    by_name = {r.name: r for r in results}
    reference = by_name["reference: CLI + torch + SB3 imports"]
    lines = [f"{'command':<40} {'median s':>9} {'peak MB':>8} {'vs reference':>13}"]
    for r in results:
        lines.append(f"{r.name:<40} {r.seconds:>9.3f} {r.peak_mb:>8.1f} {reference.seconds / r.seconds:>12.1f}x")
    health, help_ = by_name["spy-rl health"], by_name["spy-rl --help"]
    lines.append(
        f"targets: health <= {HEALTH_TARGET[0]} s and <= {HEALTH_TARGET[1]:.0f} MB: "
        f"{'met' if health.seconds <= HEALTH_TARGET[0] and health.peak_mb <= HEALTH_TARGET[1] else 'MISSED'}; "
        f"--help <= {HELP_TARGET_S} s: {'met' if help_.seconds <= HELP_TARGET_S else 'MISSED'}"
    )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("\n".join(report(run(args.repeats))))


if __name__ == "__main__":
    main()
