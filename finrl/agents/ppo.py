"""PPO hyperparameters and model construction (stable-baselines3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from finrl.errors import ConfigError


@dataclass(frozen=True)
class PPOConfig:
    """Defaults measured for throughput on 2 CPU cores (see benchmarks/): many small envs, 1 torch thread."""

    learning_rate: float = 3e-4
    n_steps: int = 256
    batch_size: int = 1024
    n_epochs: int = 5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    net_arch: tuple[int, ...] = (64, 64)
    n_envs: int = 16
    torch_threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        rollout = self.n_steps * self.n_envs
        if self.batch_size > rollout:
            raise ConfigError(f"batch_size {self.batch_size} exceeds one rollout (n_steps x n_envs = {rollout})")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["net_arch"] = list(self.net_arch)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PPOConfig:
        return cls(**{**data, "net_arch": tuple(data.get("net_arch", (64, 64)))})

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
