"""The search space of a tuning study: which settings a trial draws, and from what.

A space is a mapping of setting names to distributions, written as YAML so that a user can
replace it with ``--search-space FILE.yaml``. It is validated here for shape (one clear line
per problem) and stored in the study by ``spy-rl tune init``: every worker draws from the same
space whatever its local files say. Which names exist and which values they accept is the
caller's to check (the application knows its settings; this layer does not).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from finrl.errors import ConfigError
from finrl.schemas import first_problem

if TYPE_CHECKING:
    import optuna

Choice = str | int | float | bool

# The default space: every knob that shapes a trained policy and that earlier research found to
# matter (docs/results.md). Names are settings (SPY_<NAME>); ranges bracket their defaults.
DEFAULT_SEARCH_SPACE_YAML = """\
# float/int: a range (log: true draws on a log scale); categorical: a list of choices.
learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
n_steps: {type: categorical, choices: [64, 128, 256, 512]}      # steps per env per rollout (16 envs)
batch_size: {type: categorical, choices: [256, 512, 1024]}      # at most n_steps x n_envs
n_epochs: {type: int, low: 3, high: 10}
gamma: {type: float, low: 0.9, high: 0.999}
ent_coef: {type: float, low: 1.0e-4, high: 0.05, log: true}
clip_range: {type: float, low: 0.1, high: 0.3}
net_arch: {type: categorical, choices: ["32,32", "64,64", "128,128", "64,64,64"]}
reward: {type: categorical, choices: [log_return, differential_sharpe, drawdown_penalty, excess_log_return]}
action_space: {type: categorical, choices: [discrete3, target_weight, continuous]}
episode_length: {type: categorical, choices: [63, 126, 252]}   # trading days per training episode
"""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatRange(_Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        _check_range(self.low, self.high, self.log)
        return self


class IntRange(_Strict):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("log: true needs step 1")
        return self


class Categorical(_Strict):
    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Categorical:
        if len({repr(c) for c in self.choices}) != len(self.choices):
            raise ValueError("choices must differ")
        return self


Distribution = Annotated[FloatRange | IntRange | Categorical, Field(discriminator="type")]


class SearchSpace(RootModel[dict[str, Distribution]]):
    """Setting name -> distribution; at least one."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="after")
    def _not_empty(self) -> SearchSpace:
        if not self.root:
            raise ValueError("the search space names no setting")
        return self

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """One value per setting, drawn by the study's sampler."""
        params: dict[str, Any] = {}
        for name, spec in self.root.items():
            if isinstance(spec, FloatRange):
                params[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
            elif isinstance(spec, IntRange):
                params[name] = trial.suggest_int(name, spec.low, spec.high, step=spec.step, log=spec.log)
            else:
                params[name] = trial.suggest_categorical(name, spec.choices)
        return params

    def candidate_values(self, name: str) -> list[Choice]:
        """Values that stand for the whole range of ``name`` when a caller checks them (ends and choices)."""
        spec = self.root[name]
        return list(spec.choices) if isinstance(spec, Categorical) else [spec.low, spec.high]

    def to_json(self) -> dict[str, Any]:
        return {name: spec.model_dump() for name, spec in self.root.items()}


def _check_range(low: float, high: float, log: bool) -> None:
    if not low < high:
        raise ValueError(f"low {low} must be below high {high}")
    if log and low <= 0:
        raise ValueError("log: true needs low > 0")


def parse_search_space(document: Any, source: str) -> SearchSpace:
    """A :class:`SearchSpace` from parsed YAML/JSON; a problem is one :class:`ConfigError` line naming it."""
    try:
        return SearchSpace.model_validate(document)
    except ValidationError as exc:
        where, message = first_problem(exc, skip=("float", "int", "categorical"))  # the union's tags
        raise ConfigError(f"search space {source}: {where or 'top level'}: {message}") from None


def load_search_space(path: Path | None) -> SearchSpace:
    """The space in ``path`` (YAML), or the default one."""
    if path is None:
        return parse_search_space(yaml.safe_load(DEFAULT_SEARCH_SPACE_YAML), "(default)")
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"search space {path}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"search space {path}: not valid YAML{where}") from None
    return parse_search_space(document, str(path))
