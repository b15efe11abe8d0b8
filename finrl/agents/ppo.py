"""PPO hyperparameters and model construction (stable-baselines3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from finrl.errors import ConfigError


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters; every user-facing value comes from the caller (``Settings`` holds the defaults).

    ``vf_coef`` and ``max_grad_norm`` are not settings: they keep stable-baselines3's own defaults,
    declared here and nowhere else.
    """

    learning_rate: float
    n_steps: int
    batch_size: int
    n_epochs: int
    gamma: float
    gae_lambda: float
    clip_range: float
    ent_coef: float
    target_kl: float | None
    net_arch: tuple[int, ...]
    n_envs: int
    torch_threads: int
    device: str
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5

    def __post_init__(self) -> None:
        rollout = self.n_steps * self.n_envs
        if self.batch_size > rollout:
            raise ConfigError(f"batch_size {self.batch_size} exceeds one rollout (n_steps x n_envs = {rollout})")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["net_arch"] = list(self.net_arch)
        return data

    def sb3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``stable_baselines3.PPO`` (everything but the env and logging)."""
        return {
            "learning_rate": self.learning_rate,
            "n_steps": self.n_steps,
            "batch_size": self.batch_size,
            "n_epochs": self.n_epochs,
            "gamma": self.gamma,
            "gae_lambda": self.gae_lambda,
            "clip_range": self.clip_range,
            "ent_coef": self.ent_coef,
            "vf_coef": self.vf_coef,
            "max_grad_norm": self.max_grad_norm,
            "target_kl": self.target_kl,
            "policy_kwargs": {"net_arch": list(self.net_arch)},
            "device": self.device,
        }
