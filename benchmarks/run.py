"""Throughput benchmarks, reported as ratios measured in one run on the same data.

1. env: env steps per second of ``SpyTradingEnv`` (one env), ``BatchedSpyEnv`` (all training
   envs in one call, counted per env step) and SB3's ``DummyVecEnv`` of ``SpyTradingEnv``, each
   against AI4Finance FinRL's ``StockTradingEnv`` (its module is taken from the published FinRL
   wheel at run time, never vendored), random valid actions of the action space from a fixed
   seed, resetting at episode end; in the settings' env config and, if that is not it, in
   discrete3 with the log-return reward (the numbers before target weights became the default).
   Targets: >= 50x for the scalar env, >= 100x per env step for the batched env.
2. ppo: ``finrl.agents.training.train`` with the default settings as it was (``DummyVecEnv``
   and the callbacks of benchmarks/baseline.py) and as it is (``BatchedSpyEnv`` and the lean
   callbacks), alternating, the fastest of ``--ppo-repeats`` runs each: frames per second of
   ``learn()``, their ratio (target >= 1.25x) and, from the same runs, where the time goes
   (benchmarks/breakdown.py; its timers cost well under 1% of a step).
3. backtest: model load + a deterministic replay of agent and baselines over every day, then the
   report's files (write_report: equity.png, the plotly report.html, the quantstats tearsheet.html)
   as a ratio to that replay.
4. startup: wall time and peak RSS of ``spy-rl health``, ``version`` and ``--help`` in fresh
   interpreters, against importing the CLI with torch and stable-baselines3 (benchmarks/startup.py).

Run from the repository root:  python -m benchmarks.run [--only env|ppo|backtest|startup] [--help]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from benchmarks import baseline
from benchmarks.breakdown import Breakdown
from finrl.agents.batched_env import BatchedSpyEnv
from finrl.agents.bundle import load_bundle
from finrl.agents.ppo import PPOConfig
from finrl.agents.training import TrainingJob, VecEnvKind, train
from finrl.applications.spy_rl_trading.settings import Settings, load_settings
from finrl.backtest.engine import run_backtest
from finrl.log import configure_logging
from finrl.meta.data.market_data import MarketData, load_market_data
from finrl.meta.env.execution import CostModel
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.spy_env import EnvConfig, SpyTradingEnv
from finrl.meta.features import FeatureSpec, build_features
from finrl.meta.preprocessing import DataSplit, DateWindow, FeatureNormalizer

CACHE_DIR = Path(__file__).resolve().parent / ".cache"  # gitignored
REFERENCE_VERSION = "0.3.7"
REFERENCE_MEMBER = "finrl/meta/env_stock_trading/env_stocktrading.py"
REFERENCE_MODULE = "finrl_ref_env_stocktrading"  # never "finrl": that name is this project
ENV_RATIO_TARGET = 50.0  # one SpyTradingEnv
BATCHED_RATIO_TARGET = 100.0  # BatchedSpyEnv, per env step
PPO_RATIO_TARGET = 1.25  # batched env + lean callbacks over DummyVecEnv + the old callbacks
PPO_TARGET_S = 180.0  # 3 minutes for the default training job
BUDGET_S = (30 * 60.0, 60 * 60.0)  # the deployment budget, 30-60 minutes
BACKTEST_BUDGET_S = (5 * 60.0, 10 * 60.0)  # the deployment doc's backtest budget, 5-10 minutes

Row = tuple[str, str]


@dataclass(frozen=True)
class Dataset:
    settings: Settings  # the defaults (and SPY_* variables), as ``spy-rl train`` reads them
    market: MarketData
    spec: FeatureSpec
    features: pd.DataFrame  # build_features over all the data
    split: DataSplit
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
    if args.csv is not None:  # a bare CSV has no VIX
        settings = load_settings(
            data_source="csv", csv_path=args.csv, vix_csv_path=args.vix_csv, use_vix=args.vix_csv is not None
        )
    else:
        settings = load_settings(data_source="sample", vix_csv_path=args.vix_csv)
    market = load_market_data(settings.data_request(), datasets_dir)
    spec = settings.feature_spec()
    features = build_features(market.bars, spec)
    split = settings.data_split(features)
    return Dataset(settings, market, spec, features, split, split.train.slice(features, what="training window"))


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


def make_reference_env(
    module: ModuleType, df: pd.DataFrame, indicators: Sequence[str], initial_cash: float, cost: CostModel
) -> Any:
    """FinRL's env on the same days, with the same costs per fill as our execution model."""
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


def time_vec_steps(env: Any, actions: np.ndarray, warmup: int, seed: int) -> StepTiming:
    """Step a VecEnv through ``actions`` [steps, n_envs] (it resets ended episodes itself).

    Counted per env step: one call steps ``n_envs`` markets. The first ``warmup`` calls run untimed.
    """
    env.seed(seed)
    env.reset()
    for row in actions[:warmup]:
        env.step(row)
    started = time.perf_counter()
    for row in actions[warmup:]:
        env.step(row)
    return StepTiming((len(actions) - warmup) * env.num_envs, time.perf_counter() - started)


def sampled_actions(space: gym.Space[Any], seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Valid random actions of ``space`` from a seeded copy of it, ``shape`` of them: ints for the
    discrete spaces, ``[..., 1]`` float32 weights for the Box, as a policy hands them over."""
    space = copy.deepcopy(space)
    space.seed(seed)
    return np.array([space.sample() for _ in range(int(np.prod(shape)))]).reshape(*shape, *(space.shape or ()))


def env_configs(config: EnvConfig) -> dict[str, EnvConfig]:
    """The settings' env and, for comparison with the numbers before it became the default, discrete3."""
    configs = {"settings": config}
    if (config.action_space, config.reward) != ("discrete3", "log_return"):
        configs["discrete3"] = replace(config, action_space="discrete3", reward="log_return")
    return configs


def env_timers(
    args: argparse.Namespace, market: MarketArrays, config: EnvConfig, n_envs: int
) -> dict[str, Callable[[], StepTiming]]:
    """Timers of the scalar env, the batched env and DummyVecEnv in ``config``, on the same random actions."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    ours = SpyTradingEnv(market, config)
    our_actions = list(sampled_actions(ours.action_space, args.seed, (args.warmup + args.env_steps,)))
    if isinstance(ours.action_space, gym.spaces.Discrete):
        our_actions = [int(a) for a in our_actions]  # a Python int, as a backtest's policy hands it over
    vec_steps, vec_warmup = -(-args.env_steps // n_envs), -(-args.warmup // n_envs)
    vec_actions = sampled_actions(ours.action_space, args.seed, (vec_warmup + vec_steps, n_envs))
    batched_env = BatchedSpyEnv(market, config, n_envs)
    dummy_env = DummyVecEnv([partial(SpyTradingEnv, market, config)] * n_envs)
    scalar, batched, dummy = env_names(n_envs)
    return {
        scalar: lambda: time_steps(lambda: ours.reset(seed=args.seed), ours.step, our_actions, args.warmup),
        batched: lambda: time_vec_steps(batched_env, vec_actions, vec_warmup, args.seed),
        dummy: lambda: time_vec_steps(dummy_env, vec_actions, vec_warmup, args.seed),
    }


def env_names(n_envs: int) -> tuple[str, str, str]:
    return "SpyTradingEnv (1 env)", f"BatchedSpyEnv ({n_envs} envs per call)", f"DummyVecEnv ({n_envs} SpyTradingEnv)"


def bench_env(args: argparse.Namespace, data: Dataset) -> list[Row]:
    """Each round times every env once; the fastest round of each counts (drifting load hits all alike)."""
    market = our_market(data)
    config = data.settings.env_config()
    n_envs = data.settings.ppo_config().n_envs
    configs = env_configs(config)
    timers: dict[tuple[str, str], Callable[[], StepTiming]] = {}
    for label, cfg in configs.items():
        timers.update({(label, name): timer for name, timer in env_timers(args, market, cfg, n_envs).items()})
    reference = ("", "FinRL StockTradingEnv")
    module, origin = (None, "skipped (--no-reference)")
    if not args.no_reference:
        module, origin = fetch_reference_module(args.finrl_version, args.finrl_wheel)
    if module is not None:
        ref = make_reference_env(
            module, finrl_frame(data), data.spec.indicators, config.initial_cash, config.execution.costs
        )
        rng = np.random.default_rng(args.seed)
        ref_actions = list(rng.uniform(-1.0, 1.0, size=(args.warmup + args.finrl_steps, 1)).astype(np.float32))
        reference = ("", f"FinRL {args.finrl_version} StockTradingEnv")
        timers[reference] = lambda: time_steps(ref.reset, ref.step, ref_actions, args.warmup)
    best: dict[tuple[str, str], StepTiming] = {}
    for _ in range(args.repeats):
        for key, timer in timers.items():
            timing = timer()
            if key not in best or timing.per_second > best[key].per_second:
                best[key] = timing

    shape = f"{len(market)} training days x {market.n_features} features"
    rows: list[Row] = [
        ("env data", f"{data.market.source} {data.market.symbol}, {shape}"),
        ("env actions", "random valid actions of the action space (seeded), resetting at episode end"),
        *(
            (f"env config [{label}]", f"{cfg.action_space} actions, {cfg.reward} reward")
            for label, cfg in configs.items()
        ),
    ]
    for (label, name), timing in best.items():
        who = name if (label, name) == reference else f"ours [{label}]: {name}"
        rows.append((who, f"{timing.per_second:,.0f} env steps/s ({timing.steps:,} steps, best of {args.repeats})"))
    scalar, batched, dummy = env_names(n_envs)
    for label in configs:
        speedup = best[label, batched].per_second / best[label, dummy].per_second
        rows.append((f"[{label}] batched / DummyVecEnv, per env step", f"{speedup:.1f}x"))
    if module is None:
        print(f"FinRL reference env unavailable: {origin}; reporting our envs only", flush=True)
        rows.append(("FinRL StockTradingEnv", "unavailable (see the line above), no ratio"))
        return rows
    for label in configs:
        for name, target in ((scalar, ENV_RATIO_TARGET), (batched, BATCHED_RATIO_TARGET), (dummy, None)):
            ratio = best[label, name].per_second / best[reference].per_second
            verdict = f" (target >= {target:.0f}x: {'met' if ratio >= target else 'NOT met'})" if target else ""
            rows.append((f"[{label}] ratio {name.split(' (')[0]} / FinRL", f"{ratio:,.1f}x per env step{verdict}"))
    return rows


# ---------------------------------------------------------------------------- PPO


def training_job(data: Dataset, workdir: Path, run_name: str, ppo: PPOConfig, timesteps: int, **kw: Any) -> TrainingJob:
    """A job as ``spy-rl train`` builds it from the default settings (no checkpoints, no progress bar)."""
    settings = data.settings
    return TrainingJob(
        features=data.features,
        feature_spec=data.spec,
        data_info=data.market.describe(),
        split=data.split,
        run_name=run_name,
        models_dir=workdir / "models",
        tensorboard_dir=workdir / "tensorboard",
        ppo=ppo,
        env=settings.env_config(),
        seed=settings.random_seed,
        total_timesteps=timesteps,
        eval_freq=kw.pop("eval_freq", settings.eval_freq),
        checkpoint_freq=0,
        progress=False,
        **kw,
    )


@dataclass(frozen=True)
class Setup:
    label: str
    vec_env: VecEnvKind
    baseline: bool  # the old callbacks (benchmarks/baseline.py)


BEFORE = Setup("before: DummyVecEnv + old callbacks", "dummy", baseline=True)
AFTER = Setup("now: BatchedSpyEnv + lean callbacks", "batched", baseline=False)


def run_training(data: Dataset, workdir: Path, setup: Setup, timesteps: int, methods: bool) -> Breakdown:
    """Train once, timing ``learn()`` (with ``methods``: where its time goes), not the model build or publishing."""
    job = training_job(
        data, workdir, f"{setup.vec_env}-{len(list((workdir / 'models').glob('*')))}", data.settings.ppo_config(),
        timesteps, vec_env=setup.vec_env,
    )  # fmt: skip
    breakdown = Breakdown()
    callbacks = baseline.installed() if setup.baseline else contextlib.nullcontext()
    with callbacks, breakdown.installed(methods=methods):
        train(job)
    breakdown.timesteps = -(-timesteps // job.ppo.n_steps // job.ppo.n_envs) * job.ppo.n_steps * job.ppo.n_envs
    return breakdown


def best_runs(data: Dataset, workdir: Path, timesteps: int, rounds: int, methods: bool) -> dict[Setup, Breakdown]:
    """The fastest of ``rounds`` runs per setup, alternating which goes first: the machine's other
    load drifts over a benchmark, and the fastest run is the one it disturbed least."""
    best: dict[Setup, Breakdown] = {}
    for round_ in range(rounds):
        for setup in (BEFORE, AFTER) if round_ % 2 == 0 else (AFTER, BEFORE):
            run = run_training(data, workdir, setup, timesteps, methods)
            if setup not in best or run.learn_seconds < best[setup].learn_seconds:
                best[setup] = run
    return best


def bench_ppo(args: argparse.Namespace, data: Dataset, workdir: Path) -> list[Row]:
    ppo, settings = data.settings.ppo_config(), data.settings
    run_training(data, workdir, BEFORE, ppo.n_steps * ppo.n_envs, methods=False)  # imports, first-call costs
    best = best_runs(data, workdir, args.ppo_timesteps, args.ppo_repeats, methods=not args.no_breakdown)
    fps = {setup: run.timesteps / run.learn_seconds for setup, run in best.items()}
    cpu_fps = {setup: run.timesteps / run.learn_cpu_seconds for setup, run in best.items()}
    ratio, cpu_ratio = fps[AFTER] / fps[BEFORE], cpu_fps[AFTER] / cpu_fps[BEFORE]
    projected = settings.total_timesteps / fps[AFTER]
    low, high = BUDGET_S
    rows: list[Row] = [
        ("ppo config", f"n_envs={ppo.n_envs} n_steps={ppo.n_steps} batch={ppo.batch_size} epochs={ppo.n_epochs} "
                       f"torch_threads={ppo.torch_threads} eval_freq={settings.eval_freq}, "
                       f"{best[AFTER].timesteps:,} timesteps per run, best of {args.ppo_repeats} per setup"),
        *((f"ppo fps, {setup.label}", f"{fps[setup]:,.0f} steps/s wall, {cpu_fps[setup]:,.0f} per CPU second")
          for setup in (BEFORE, AFTER)),
        ("ppo fps ratio now / before", f"{ratio:.2f}x wall, {cpu_ratio:.2f}x CPU (target >= {PPO_RATIO_TARGET}x: "
                                        f"{'met' if ratio >= PPO_RATIO_TARGET else 'NOT met'})"),
        (f"projected learn() for {settings.total_timesteps:,} steps", f"{projected:.0f} s, "
         f"{projected / PPO_TARGET_S:.2f} of the 3-min target, {projected / low:.3f} / {projected / high:.3f} "
         "of the 30-60 min budget"),
    ]  # fmt: skip
    if args.no_breakdown:
        return rows
    rows.append(("ppo time per timestep", "in the same runs: before -> now, microseconds (share of learn())"))
    before, now = (best[s].rows(best[s].timesteps) for s in (BEFORE, AFTER))
    totals = [1e6 * best[s].learn_seconds / best[s].timesteps for s in (BEFORE, AFTER)]
    for (name, _, us_before), (_, _, us_now) in zip(before, now, strict=True):
        speedup = f"{us_before / us_now:5.1f}x" if us_now > 0 else "  n/a"
        share = f"{100 * us_before / totals[0]:4.1f}% -> {100 * us_now / totals[1]:4.1f}%"
        rows.append((f"  {name}", f"{us_before:7.1f} -> {us_now:7.1f} us  {speedup}  ({share} of learn)"))
    rows.append(("  learn() total", f"{totals[0]:7.1f} -> {totals[1]:7.1f} us  {totals[0] / totals[1]:5.1f}x"))
    return rows


# ---------------------------------------------------------------------------- backtest


def bench_backtest(args: argparse.Namespace, data: Dataset, workdir: Path) -> list[Row]:
    """Model load + a deterministic replay of agent and baselines over every day of the data."""
    models = workdir / "models"
    if not (models / "latest").exists():  # --only backtest: a tiny model is enough to time the replay
        small = replace(data.settings.ppo_config(), n_envs=2, n_steps=64, batch_size=64)
        train(training_job(data, workdir, "bench-small", small, 256, eval_freq=0))
    index = pd.DatetimeIndex(data.features.index)
    window = DateWindow(index[0].date(), index[-1].date())
    limits = data.settings.risk_limits()  # what `spy-rl backtest` applies by default
    timings: dict[bool, list[float]] = {False: [], True: []}
    report_parts: dict[str, list[float]] = {"equity.png": [], "report.html": [], "tearsheet.html": [], "all": []}
    for repeat in range(args.repeats):
        for gated in (False, True):  # interleaved: the same machine state for both
            started = time.perf_counter()
            bundle = load_bundle("latest", models)
            rf = data.settings.risk_free_rate
            result = run_backtest(bundle, data.features, window, rf, risk_limits=limits if gated else None)
            timings[gated].append(time.perf_counter() - started)
        for part, seconds in time_report(result, workdir / f"report-{repeat}").items():
            report_parts[part].append(seconds)
    best, gated_best = min(timings[False]), min(timings[True])
    report = {part: min(seconds) for part, seconds in report_parts.items()}
    years = len(index) / 252
    low, high = BACKTEST_BUDGET_S
    return [
        ("backtest window", f"{window.start} .. {window.end} ({len(index)} days, {years:.1f} years, 4 strategies)"),
        ("backtest wall incl. model load", f"{best:.2f} s (best of {args.repeats})"),
        ("backtest wall with risk limits", f"{gated_best:.2f} s: {gated_best / best:.2f}x unconstrained"),
        ("backtest wall / 5-10 min budget", f"{gated_best / low:.4f} / {gated_best / high:.4f}"),
        ("report files (write_report)", f"{report['all']:.2f} s: {report['all'] / gated_best:.2f}x the backtest"),
        *(
            (f"  of which {part}", f"{report[part]:.2f} s ({report[part] / report['all']:.0%})")
            for part in ("equity.png", "report.html", "tearsheet.html")
        ),
    ]


def time_report(result: Any, directory: Path) -> dict[str, float]:
    """Seconds of ``write_report`` (every file of a backtest's folder) and of its three costly parts."""
    from finrl.backtest import report

    parts: dict[str, float] = {}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                parts[name] = time.perf_counter() - started

        return run

    wrapped = {"equity_png": "equity.png", "report_page": "report.html", "write_tearsheet": "tearsheet.html"}
    originals = {name: getattr(report, name) for name in wrapped}
    try:
        for name, part in wrapped.items():
            setattr(report, name, timed(part, originals[name]))
        started = time.perf_counter()
        report.write_report(result, directory)
        parts["all"] = time.perf_counter() - started
    finally:
        for name, function in originals.items():
            setattr(report, name, function)
    return parts


# ---------------------------------------------------------------------------- entry point


def machine_rows() -> list[Row]:
    import stable_baselines3
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        ("machine", f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores ({usable} usable)"),
        ("python / numpy / pandas", f"{platform.python_version()} / {np.__version__} / {pd.__version__}"),
        ("torch / stable-baselines3", f"{torch.__version__} / {stable_baselines3.__version__}"),
        ("torch threads", f"{torch.get_num_threads()} default, {load_settings().torch_threads} for PPO"),
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
    parser.add_argument(
        "--only", choices=("env", "ppo", "backtest", "startup"), help="run one benchmark (default: all)"
    )
    parser.add_argument("--csv", type=Path, help="daily bars CSV (default: the offline sample data)")
    parser.add_argument("--vix-csv", type=Path, help="VIX daily CSV (without it a --csv run has no VIX)")
    parser.add_argument("--env-steps", type=int, default=40_000, help="random env steps in ours (default 40000)")
    parser.add_argument("--finrl-steps", type=int, default=5_000, help="random steps in FinRL's env (default 5000)")
    parser.add_argument("--warmup", type=int, default=500, help="untimed steps before each env timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per env; the fastest counts (default 5)")
    parser.add_argument("--finrl-version", default=REFERENCE_VERSION, help="FinRL release to compare with")
    parser.add_argument("--finrl-wheel", type=Path, help="a local FinRL wheel (no download)")
    parser.add_argument("--no-reference", action="store_true", help="skip FinRL's env")
    parser.add_argument(
        "--ppo-timesteps", type=int, default=40_000, help="PPO timesteps per training run (default 40000)"
    )
    parser.add_argument("--ppo-repeats", type=int, default=5, help="plain PPO runs per setup; the fastest counts")
    parser.add_argument("--no-breakdown", action="store_true", help="time learn() only, not where its time goes")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--verbose", action="store_true", help="show finrl's INFO log lines")
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error("--warmup cannot be negative")
    for name in ("env_steps", "finrl_steps", "ppo_timesteps", "ppo_repeats", "repeats"):
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
    if rows:
        print_table(rows)
    if args.only in (None, "startup"):
        # from a small fresh interpreter: a child forked from this one (torch loaded) would report its RSS
        subprocess.run([sys.executable, "-m", "benchmarks.startup", "--repeats", str(args.repeats)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
