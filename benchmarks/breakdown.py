"""Where PPO's time goes: wrap SB3's and finrl's methods with exclusive-time accumulators.

Benchmark-only instrumentation: methods are replaced on their classes for the duration of a
``with Breakdown().installed():`` block and restored afterwards; library code is not touched.
A call's time counts once, in its own bucket: a wrapped call made inside another (a validation
inside a callback) is taken out of the caller's bucket, except inside a validation, which keeps
all it calls (its own policy forward passes). Each wrapped call costs about a microsecond; "other" is what is left of
``learn()`` (SB3's loop: tensor/array conversions, timeout bootstrapping, bookkeeping).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

BUCKETS = (
    "env step",
    "policy forward",
    "rollout buffer",
    "callbacks",
    "validation",
    "PPO updates",
    "logging",
)
CALLBACK_METHODS = ("on_step", "update_locals", "on_rollout_start", "on_rollout_end", "on_training_end")


class Breakdown:
    """Seconds and calls per bucket, exclusive of nested wrapped calls."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.learn_seconds = 0.0
        self.learn_cpu_seconds = 0.0
        self.timesteps = 0  # set by the caller: learn() runs whole rollouts
        self._stack: list[float] = []  # time spent in wrapped children of each open call
        self._inside_inclusive = False  # in a validation: nested calls stay in its bucket

    def wrap(self, bucket: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` timed into ``bucket``; "validation" keeps what it calls (its own policy forward)."""
        stack, seconds, calls, clock = self._stack, self.seconds, self.calls, time.perf_counter
        inclusive = bucket == "validation"

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._inside_inclusive:
                return function(*args, **kwargs)
            stack.append(0.0)
            self._inside_inclusive = inclusive
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = clock() - started
                self._inside_inclusive = False
                seconds[bucket] += elapsed - stack.pop()
                calls[bucket] += 1
                if stack:
                    stack[-1] += elapsed

        return timed

    def rows(self, timesteps: int) -> list[tuple[str, float, float]]:
        """(bucket, seconds, microseconds per timestep), with "other" = learn() minus the buckets."""
        out = [(name, self.seconds[name], 1e6 * self.seconds[name] / timesteps) for name in BUCKETS]
        other = self.learn_seconds - sum(self.seconds[name] for name in BUCKETS)
        out.append(("other (SB3 loop)", other, 1e6 * other / timesteps))
        return out

    @contextmanager
    def installed(self, methods: bool = True) -> Iterator[Breakdown]:
        """Time ``learn()`` (wall and CPU) and, with ``methods``, the methods of :func:`targets`.

        Wrappers go on the named class (a subclass may get one for an inherited method) and are
        removed on exit.
        """
        replaced: list[tuple[Any, str, Any]] = []  # (owner, name, its own attribute or None)

        def put(owner: Any, name: str, value: Any) -> None:
            replaced.append((owner, name, vars(owner).get(name)))
            setattr(owner, name, value)

        try:
            for owner, name, bucket in targets() if methods else []:
                put(owner, name, self.wrap(bucket, _resolve(owner, name)))
            learn = _resolve(_ppo(), "learn")

            def timed_learn(*args: Any, **kwargs: Any) -> Any:
                started, cpu = time.perf_counter(), time.process_time()
                try:
                    return learn(*args, **kwargs)
                finally:
                    self.learn_seconds += time.perf_counter() - started
                    self.learn_cpu_seconds += time.process_time() - cpu

            put(_ppo(), "learn", timed_learn)
            yield self
        finally:
            for owner, name, original in reversed(replaced):
                if original is None:
                    delattr(owner, name)
                else:
                    setattr(owner, name, original)


def _resolve(owner: Any, name: str) -> Any:
    """``name`` as ``owner`` sees it: from the first class of its MRO that defines it (or the module)."""
    for scope in getattr(owner, "__mro__", (owner,)):
        if name in vars(scope):
            return vars(scope)[name]
    raise AttributeError(f"{owner!r} has no attribute {name!r}")


def _ppo() -> Any:
    from stable_baselines3 import PPO

    return PPO


def targets() -> list[tuple[Any, str, str]]:
    """(class or module, attribute, bucket) for every method the breakdown times."""
    from stable_baselines3 import PPO
    from stable_baselines3.common import on_policy_algorithm
    from stable_baselines3.common.buffers import RolloutBuffer
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.vec_env import VecEnv

    import finrl.agents.callbacks  # noqa: F401 - its callback classes must exist to be found below

    out: list[tuple[Any, str, str]] = [
        (VecEnv, "step", "env step"),  # the outer VecMonitor's step: the whole VecEnv stack
        (on_policy_algorithm, "obs_as_tensor", "policy forward"),
        (ActorCriticPolicy, "forward", "policy forward"),
        (ActorCriticPolicy, "predict_values", "policy forward"),
        (ActorCriticPolicy, "obs_to_tensor", "policy forward"),  # the terminal observations' values
        (RolloutBuffer, "add", "rollout buffer"),
        (RolloutBuffer, "reset", "rollout buffer"),
        (RolloutBuffer, "compute_returns_and_advantage", "rollout buffer"),
        (PPO, "train", "PPO updates"),
        (on_policy_algorithm.OnPolicyAlgorithm, "dump_logs", "logging"),
    ]
    # the callback list SB3 calls: one wrapper per call, however many callbacks it holds
    for cls in _subclasses(CallbackList):
        out += [(cls, name, "callbacks") for name in CALLBACK_METHODS]
    for cls in _subclasses(BaseCallback):
        if "evaluate" in vars(cls):  # finrl's ValidationCallback (and the baseline's)
            out.append((cls, "evaluate", "validation"))
    return out


def _subclasses(cls: type) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += [c for c in _subclasses(sub) if c not in found]
    return found
