"""The deterministic policy as plain NumPy arrays: act without torch or stable-baselines3.

A backtest or the paper trader only evaluates a small MLP, so a bundle also carries the
policy network of its chosen model as ``policy.npz``: each hidden layer's weight and bias,
the activation, the action head and the action distribution. The forward pass mirrors
stable-baselines3's ``ActorCriticPolicy`` with a flatten features extractor (the MlpPolicy):
the observation is cast to float32 as SB3 does, then the layers are evaluated in float64,
which keeps logits within about 1e-7 of SB3's float32 torch pass.

Deterministic actions: argmax of the logits for ``Discrete`` spaces, the mean clipped to the
space's bounds for ``Box`` spaces (what ``predict(obs, deterministic=True)`` returns).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from finrl.errors import FinRLError
from finrl.fileio import atomic_write

POLICY_FORMAT = 1
Distribution = Literal["categorical", "diag_gaussian"]

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "identity": lambda x: x,
}
# torch module class name -> activation name above
_TORCH_ACTIVATIONS = {"Tanh": "tanh", "ReLU": "relu", "Identity": "identity"}


class PolicyError(FinRLError):
    """A policy that cannot be exported to, or read from, plain arrays."""


@dataclass(frozen=True)
class NumpyPolicy:
    """An MLP policy head: hidden layers ``(weight [out, in], bias [out])``, then the action head."""

    hidden: tuple[tuple[np.ndarray, np.ndarray], ...]
    activation: str
    action_weight: np.ndarray
    action_bias: np.ndarray
    distribution: Distribution = "categorical"
    action_low: np.ndarray | None = None  # Box spaces: the clip bounds of a deterministic action
    action_high: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.activation not in _ACTIVATIONS:
            raise PolicyError(f"unsupported activation {self.activation!r} (known: {', '.join(_ACTIVATIONS)})")
        width = self.observation_size
        for weight, bias in (*self.hidden, (self.action_weight, self.action_bias)):
            if weight.ndim != 2 or bias.shape != (weight.shape[0],) or weight.shape[1] != width:
                raise PolicyError(f"policy layer shapes do not chain: {weight.shape} after width {width}")
            width = weight.shape[0]
        if self.distribution == "diag_gaussian" and (self.action_low is None or self.action_high is None):
            raise PolicyError("a continuous policy needs its action bounds")

    @property
    def observation_size(self) -> int:
        first = self.hidden[0][0] if self.hidden else self.action_weight
        return int(first.shape[1])

    def logits(self, observations: np.ndarray) -> np.ndarray:
        """The action head's output for a batch ``[n, obs]`` (or one observation): logits or Gaussian means."""
        x: np.ndarray = np.asarray(observations, dtype=np.float32).astype(np.float64)  # SB3 feeds float32
        activate = _ACTIVATIONS[self.activation]
        for weight, bias in self.hidden:
            x = activate(x @ weight.T + bias)
        out: np.ndarray = x @ self.action_weight.T + self.action_bias
        return out

    def act_batch(self, observations: np.ndarray) -> np.ndarray:
        """Deterministic actions for a batch of observations."""
        out = self.logits(np.atleast_2d(observations))
        actions: np.ndarray = (
            out.argmax(axis=-1)
            if self.distribution == "categorical"
            else np.clip(out, self.action_low, self.action_high)
        )
        return actions

    def act(self, observation: np.ndarray) -> Any:
        """The deterministic action for one observation: an ``int`` (discrete) or an array (continuous)."""
        action = self.act_batch(observation)[0]
        return int(action) if self.distribution == "categorical" else action

    __call__ = act

    # ------------------------------------------------------------------ files

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            "format": np.array(POLICY_FORMAT),
            "activation": np.array(self.activation),
            "distribution": np.array(self.distribution),
            "n_hidden": np.array(len(self.hidden)),
            "action_weight": self.action_weight,
            "action_bias": self.action_bias,
        }
        for i, (weight, bias) in enumerate(self.hidden):
            arrays[f"hidden_{i}_weight"], arrays[f"hidden_{i}_bias"] = weight, bias
        if self.action_low is not None and self.action_high is not None:
            arrays["action_low"], arrays["action_high"] = self.action_low, self.action_high
        return arrays

    def save(self, path: Path) -> None:
        """Write ``policy.npz`` (no pickles: :meth:`load` reads it with ``allow_pickle=False``)."""
        buffer = io.BytesIO()
        np.savez(buffer, **self.to_arrays())  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
        atomic_write(Path(path), lambda f: f.write(buffer.getvalue()), binary=True)

    @classmethod
    def load(cls, path: Path) -> NumpyPolicy:
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError) as exc:
            raise PolicyError(f"cannot read {path}: {exc}") from exc
        return cls.from_arrays(arrays, source=str(path))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], *, source: str = "policy arrays") -> NumpyPolicy:
        try:
            if int(arrays["format"]) != POLICY_FORMAT:
                raise PolicyError(f"{source}: policy format {int(arrays['format'])}, this finrl reads {POLICY_FORMAT}")
            hidden = tuple(
                (np.asarray(arrays[f"hidden_{i}_weight"]), np.asarray(arrays[f"hidden_{i}_bias"]))
                for i in range(int(arrays["n_hidden"]))
            )
            return cls(
                hidden=hidden,
                activation=str(arrays["activation"]),
                action_weight=np.asarray(arrays["action_weight"]),
                action_bias=np.asarray(arrays["action_bias"]),
                distribution=_distribution(str(arrays["distribution"])),
                action_low=arrays.get("action_low"),
                action_high=arrays.get("action_high"),
            )
        except KeyError as exc:
            raise PolicyError(f"{source}: missing array {exc}") from exc

    # ------------------------------------------------------------------ export

    @classmethod
    def from_sb3(cls, model: Any) -> NumpyPolicy:
        """The deterministic policy of a stable-baselines3 on-policy model with an MLP policy.

        Reads the model's modules, never imports torch itself: callers that hold an SB3 model
        already have it loaded.
        """
        policy = model.policy
        extractor = type(getattr(policy, "pi_features_extractor", policy.features_extractor)).__name__
        if extractor != "FlattenExtractor" or getattr(policy, "squash_output", False):
            raise PolicyError(f"only MLP policies on flat observations export to NumPy (got {extractor})")
        hidden: list[tuple[np.ndarray, np.ndarray]] = []
        activations: set[str] = set()
        for module in policy.mlp_extractor.policy_net:
            name = type(module).__name__
            if name == "Linear":
                hidden.append((_array(module.weight), _array(module.bias)))
            elif name in _TORCH_ACTIVATIONS:
                activations.add(_TORCH_ACTIVATIONS[name])
            else:
                raise PolicyError(f"policy layer {name} has no NumPy equivalent")
        if len(activations) > 1:
            raise PolicyError(f"mixed activations {sorted(activations)} are not supported")
        space = policy.action_space
        continuous = type(space).__name__ == "Box"
        if not continuous and type(space).__name__ != "Discrete":
            raise PolicyError(f"action space {space} has no NumPy policy")
        return cls(
            hidden=tuple(hidden),
            activation=activations.pop() if activations else "identity",
            action_weight=_array(policy.action_net.weight),
            action_bias=_array(policy.action_net.bias),
            distribution="diag_gaussian" if continuous else "categorical",
            action_low=np.asarray(space.low, dtype=np.float64) if continuous else None,
            action_high=np.asarray(space.high, dtype=np.float64) if continuous else None,
        )


def _array(tensor: Any) -> np.ndarray:
    return np.asarray(tensor.detach().cpu().numpy(), dtype=np.float32)


def _distribution(name: str) -> Distribution:
    if name == "categorical":
        return "categorical"
    if name == "diag_gaussian":
        return "diag_gaussian"
    raise PolicyError(f"unknown action distribution {name!r}")
