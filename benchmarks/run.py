"""Throughput benchmarks, reported as ratios measured in one run on the same data.

1. env: steps per second of ``SpyTradingEnv`` versus AI4Finance FinRL's ``StockTradingEnv``
   (its module is taken from the published FinRL wheel at run time, never vendored), with
   random actions from a fixed seed, resetting at the end of each episode. Target: >= 50x.
2. ppo: PPO training through ``finrl.agents.training.train`` with the default ``PPOConfig``:
   wall time and frames per second, against the 3-minute target and a 30-60 minute budget.

Run from the repository root:  python -m benchmarks.run [--only env|ppo|backtest] [--help]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from finrl.agents.bundle import load_bundle
from finrl.agents.ppo import PPOConfig
from finrl.agents.training import TrainingJob, train
from finrl.backtest.engine import run_backtest
from finrl.log import configure_logging
from finrl.meta.data.market_data import DataRequest, MarketData, load_market_data
from finrl.meta.env.execution import CostModel
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.spy_env import EnvConfig, SpyTradingEnv
from finrl.meta.features import FeatureSpec, build_features
from finrl.meta.preprocessing import DateWindow, FeatureNormalizer, split_by_dates

CACHE_DIR = Path(__file__).resolve().parent / ".cache"  # gitignored
REFERENCE_VERSION = "0.3.7"
REFERENCE_MEMBER = "finrl/meta/env_stock_trading/env_stocktrading.py"
REFERENCE_MODULE = "finrl_ref_env_stocktrading"  # never "finrl": that name is this project
ENV_RATIO_TARGET = 50.0
PPO_TARGET_S = 180.0  # 3 minutes
BUDGET_S = (30 * 60.0, 60 * 60.0)  # the deployment budget, 30-60 minutes
BACKTEST_BUDGET_S = (5 * 60.0, 10 * 60.0)  # the deployment doc's backtest budget, 5-10 minutes

Row = tuple[str, str]


@dataclass(frozen=True)
class Dataset:
    market: MarketData
    spec: FeatureSpec
    features: pd.DataFrame  # build_features over all the data
    train_frame: pd.DataFrame  # the training window, as train() slices it


@dataclass(frozen=True)
class StepTiming:
    steps: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("nan")


# ---------------------------------------------------------------------------- data


def load_dataset(args: argparse.Namespace, datasets_dir: Path) -> Dataset:
    """Bars -> features -> training window, as the ``spy-rl train`` job prepares them."""
    if args.csv is not None:
        use_vix = args.vix_csv is not None  # a bare CSV has no VIX
        request = DataRequest(source="csv", csv_path=args.csv, vix_csv_path=args.vix_csv, use_vix=use_vix)
    else:
        request = DataRequest(source="sample", vix_csv_path=args.vix_csv)
    market = load_market_data(request, datasets_dir)
    spec = FeatureSpec(use_vix=request.use_vix)
    features = build_features(market.bars, spec)
    split = split_by_dates(pd.DatetimeIndex(features.index))
    return Dataset(market, spec, features, split.train.slice(features, what="training window"))


def our_market(data: Dataset) -> MarketArrays:
    normalizer = FeatureNormalizer.fit(data.train_frame, data.spec.observation_columns)
    return MarketArrays.from_features(data.train_frame, normalizer)


def finrl_frame(data: Dataset) -> pd.DataFrame:
    """The training window in FinRL's long format: one row per (date, tic), index = day number."""
    frame = data.train_frame
    columns: dict[str, Any] = {
        "date": frame.index.strftime("%Y-%m-%d"),
        "tic": data.market.symbol,
        **{c: frame[c].to_numpy() for c in ("close", "open", "high", "low", "volume")},
        **{name: frame[name].to_numpy() for name in data.spec.indicators},
        "turbulence": frame["turbulence"].to_numpy(),
    }
    if "vix" in frame.columns:
        columns["vix"] = frame["vix"].to_numpy()
    return pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))


# ---------------------------------------------------------------------------- FinRL reference env


def fetch_reference_module(version: str, wheel: Path | None) -> tuple[ModuleType | None, str]:
    """FinRL's env_stocktrading module from its wheel, or None and the reason."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    if wheel is None:
        wheel = _cached_wheel(version)
    if wheel is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"finrl=={version}", "-d", str(CACHE_DIR)]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"pip download finrl=={version} failed: {exc}"
        wheel = _cached_wheel(version)
        if done.returncode != 0 or wheel is None:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"pip download finrl=={version} failed (no network?): {last}"
    source = CACHE_DIR / f"finrl-{version}-env_stocktrading.py"
    try:
        with zipfile.ZipFile(wheel) as zf:
            source.write_bytes(zf.read(REFERENCE_MEMBER))
        spec = importlib.util.spec_from_file_location(REFERENCE_MODULE, source)
        if spec is None or spec.loader is None:
            return None, f"cannot load {source}"
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:  # a bad wheel, a missing member, an import it needs
        return None, f"cannot load FinRL's StockTradingEnv from {wheel.name}: {type(exc).__name__}: {exc}"
    return module, f"{wheel.name}:{REFERENCE_MEMBER}"


def _cached_wheel(version: str) -> Path | None:
    found = sorted(p for p in CACHE_DIR.glob("*.whl") if p.name.lower().startswith(f"finrl-{version}-"))
    return found[0] if found else None


def make_reference_env(module: ModuleType, df: pd.DataFrame, indicators: Sequence[str], initial_cash: float) -> Any:
    cost = CostModel()  # the same costs per fill as our default execution model
    cost_pct = cost.price_impact + cost.commission_rate
    return module.StockTradingEnv(
        df=df,
        stock_dim=1,
        hmax=100,
        initial_amount=int(initial_cash),
        num_stock_shares=[0],
        buy_cost_pct=[cost_pct],
        sell_cost_pct=[cost_pct],
        reward_scaling=1e-4,
        state_space=1 + 2 + len(indicators),  # cash, price, shares, indicators
        action_space=1,
        tech_indicator_list=list(indicators),
        print_verbosity=10**9,  # no episode printouts
    )


# ---------------------------------------------------------------------------- timing


def time_steps(
    reset: Callable[[], object], step: Callable[[Any], tuple], actions: Sequence[Any], warmup: int
) -> StepTiming:
    """Step through ``actions``, resetting whenever an episode ends; resets are timed too.

    The first ``warmup`` actions run untimed (caches, first-call costs).
    """

    def play(chunk: Sequence[Any]) -> None:
        for action in chunk:
            _, _, terminated, truncated, _ = step(action)
            if terminated or truncated:
                reset()

    reset()
    play(actions[:warmup])
    started = time.perf_counter()
    play(actions[warmup:])
    return StepTiming(len(actions) - warmup, time.perf_counter() - started)


def best_of(repeats: int, run: Callable[[], StepTiming]) -> StepTiming:
    """The fastest of ``repeats`` timings: the least disturbed by the rest of the machine."""
    return min((run() for _ in range(repeats)), key=lambda t: t.seconds / t.steps)


def bench_env(args: argparse.Namespace, data: Dataset) -> list[Row]:
    market = our_market(data)
    config = EnvConfig()
    ours = SpyTradingEnv(market, config)
    rng = np.random.default_rng(args.seed)
    our_actions = [int(a) for a in rng.integers(0, 3, size=args.warmup + args.env_steps)]
    mine = best_of(
        args.repeats, lambda: time_steps(lambda: ours.reset(seed=args.seed), ours.step, our_actions, args.warmup)
    )
    shape = f"{len(market)} training days x {market.n_features} features"
    rows: list[Row] = [
        ("env data", f"{data.market.source} {data.market.symbol}, {shape}"),
        ("ours: SpyTradingEnv", f"{mine.per_second:,.0f} steps/s ({mine.steps:,} steps, best of {args.repeats})"),
    ]

    module, origin = (None, "skipped (--no-reference)")
    if not args.no_reference:
        module, origin = fetch_reference_module(args.finrl_version, args.finrl_wheel)
    if module is None:
        print(f"FinRL reference env unavailable: {origin}; reporting our env only", flush=True)
        rows.append(("FinRL StockTradingEnv", "unavailable (see the line above), no ratio"))
        return rows
    ref = make_reference_env(module, finrl_frame(data), data.spec.indicators, config.initial_cash)
    rng = np.random.default_rng(args.seed)
    ref_actions = list(rng.uniform(-1.0, 1.0, size=(args.warmup + args.finrl_steps, 1)).astype(np.float32))
    theirs = best_of(args.repeats, lambda: time_steps(ref.reset, ref.step, ref_actions, args.warmup))
    ratio = mine.per_second / theirs.per_second
    verdict = "met" if ratio >= ENV_RATIO_TARGET else "NOT met"
    rows += [
        (
            f"FinRL {args.finrl_version} StockTradingEnv",
            f"{theirs.per_second:,.0f} steps/s ({theirs.steps:,} steps, best of {args.repeats})",
        ),
        ("env speed ratio ours/FinRL", f"{ratio:,.1f}x (target >= {ENV_RATIO_TARGET:.0f}x: {verdict})"),
    ]
    return rows


# ---------------------------------------------------------------------------- PPO


def bench_ppo(args: argparse.Namespace, data: Dataset, workdir: Path) -> list[Row]:
    ppo = PPOConfig()
    job = TrainingJob(
        features=data.features,
        feature_spec=data.spec,
        data_info=data.market.describe(),
        split=split_by_dates(pd.DatetimeIndex(data.features.index)),
        run_name="bench",
        models_dir=workdir / "models",
        tensorboard_dir=workdir / "tensorboard",
        ppo=ppo,
        seed=args.seed,
        total_timesteps=args.ppo_timesteps,
        checkpoint_freq=0,
        progress=False,
    )
    started = time.perf_counter()
    result = train(job)
    wall = time.perf_counter() - started
    timesteps = int(result.metrics["timesteps"])
    learn = float(result.metrics["wall_seconds"])
    low, high = BUDGET_S
    return [
        ("ppo config", f"n_envs={ppo.n_envs} n_steps={ppo.n_steps} batch={ppo.batch_size} "
                       f"epochs={ppo.n_epochs} torch_threads={ppo.torch_threads} eval_freq={job.eval_freq}"),
        ("ppo timesteps", f"{timesteps:,} (asked {args.ppo_timesteps:,})"),
        ("ppo wall: train() / learn()", f"{wall:.1f} s / {learn:.1f} s"),
        ("ppo fps: train() / learn()", f"{timesteps / wall:,.0f} / {timesteps / learn:,.0f} steps/s"),
        ("ppo wall / 3-min target", f"{wall / PPO_TARGET_S:.2f} ({'met' if wall <= PPO_TARGET_S else 'NOT met'})"),
        ("ppo wall / 30-60 min budget", f"{wall / low:.3f} / {wall / high:.3f}"),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- backtest


def bench_backtest(args: argparse.Namespace, data: Dataset, workdir: Path) -> list[Row]:
    """Model load + a deterministic replay of agent and baselines over every day of the data."""
    models = workdir / "models"
    if not (models / "latest").exists():  # --only backtest: a tiny model is enough to time the replay
        small = PPOConfig(n_envs=2, n_steps=64, batch_size=64)
        train(
            TrainingJob(
                features=data.features, feature_spec=data.spec, data_info=data.market.describe(),
                split=split_by_dates(pd.DatetimeIndex(data.features.index)), run_name="bench-small",
                models_dir=models, tensorboard_dir=workdir / "tensorboard", ppo=small, seed=args.seed,
                total_timesteps=256, eval_freq=0, checkpoint_freq=0, progress=False,
            )
        )  # fmt: skip
    index = pd.DatetimeIndex(data.features.index)
    window = DateWindow(index[0].date(), index[-1].date())
    timings = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        bundle = load_bundle("latest", models)
        run_backtest(bundle, data.features, window)
        timings.append(time.perf_counter() - started)
    best = min(timings)
    years = len(index) / 252
    low, high = BACKTEST_BUDGET_S
    return [
        ("backtest window", f"{window.start} .. {window.end} ({len(index)} days, {years:.1f} years, 4 strategies)"),
        ("backtest wall incl. model load", f"{best:.2f} s (best of {args.repeats})"),
        ("backtest wall / 5-10 min budget", f"{best / low:.4f} / {best / high:.4f}"),
    ]


# ---------------------------------------------------------------------------- entry point


def machine_rows() -> list[Row]:
    import stable_baselines3
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        ("machine", f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores ({usable} usable)"),
        ("python / numpy / pandas", f"{platform.python_version()} / {np.__version__} / {pd.__version__}"),
        ("torch / stable-baselines3", f"{torch.__version__} / {stable_baselines3.__version__}"),
        ("torch threads", f"{torch.get_num_threads()} default, {PPOConfig().torch_threads} for PPO"),
    ]


def print_table(rows: Sequence[Row]) -> None:
    width = max(len(name) for name, _ in rows)
    rule = "-" * (width + 2 + max(len(value) for _, value in rows))
    print(rule)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(rule)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("env", "ppo", "backtest"), help="run one benchmark (default: all)")
    parser.add_argument("--csv", type=Path, help="daily bars CSV (default: the offline sample data)")
    parser.add_argument("--vix-csv", type=Path, help="VIX daily CSV (without it a --csv run has no VIX)")
    parser.add_argument("--env-steps", type=int, default=20_000, help="random steps in our env (default 20000)")
    parser.add_argument("--finrl-steps", type=int, default=5_000, help="random steps in FinRL's env (default 5000)")
    parser.add_argument("--warmup", type=int, default=500, help="untimed steps before each env timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per env; the fastest counts (default 3)")
    parser.add_argument("--finrl-version", default=REFERENCE_VERSION, help="FinRL release to compare with")
    parser.add_argument("--finrl-wheel", type=Path, help="a local FinRL wheel (no download)")
    parser.add_argument("--no-reference", action="store_true", help="skip FinRL's env")
    parser.add_argument("--ppo-timesteps", type=int, default=500_000, help="PPO timesteps (default 500000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--verbose", action="store_true", help="show finrl's INFO log lines")
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error("--warmup cannot be negative")
    for name in ("env_steps", "finrl_steps", "ppo_timesteps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("INFO" if args.verbose else "ERROR")
    print_table(machine_rows())
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="finrl-bench-") as tmp:
        workdir = Path(tmp)
        data = load_dataset(args, workdir / "datasets")
        if args.only in (None, "env"):
            rows += bench_env(args, data)
        if args.only in (None, "ppo"):
            rows += bench_ppo(args, data, workdir)
        if args.only in (None, "backtest"):
            rows += bench_backtest(args, data, workdir)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
