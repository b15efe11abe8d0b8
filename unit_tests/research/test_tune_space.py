"""The tuning study's pieces on their own: the search space (default and YAML file, one-line refusals),
the storage URL (password filled in from a secret, never shown), the study definition, the budget of
trials shared by workers, and the moments a trial keeps for the Deflated Sharpe Ratio."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import optuna
import pytest

from finrl.errors import ConfigError
from finrl.research import statistics
from finrl.research.folds import FoldPlan
from finrl.research.tune.objective import SurplusTrialError, _claim
from finrl.research.tune.report import _dsr
from finrl.research.tune.space import load_search_space, parse_search_space
from finrl.research.tune.storage import StorageConfig, StorageError, masked, open_storage, with_password
from finrl.research.tune.study import StudyDefinition, read_definition, store_definition
from finrl.research.tune.trials import ReturnMoments

pytestmark = pytest.mark.unit

ISSUE_KNOBS = {"learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "ent_coef", "clip_range", "net_arch",
               "reward", "action_space", "episode_length"}  # fmt: skip


def test_the_default_space_covers_the_issue_s_knobs_and_draws_values() -> None:
    space = load_search_space(None)
    assert set(space.root) == ISSUE_KNOBS
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = space.suggest(study.ask())
    assert set(params) == ISSUE_KNOBS
    assert 1e-5 <= params["learning_rate"] <= 1e-3 and params["action_space"] in (
        "discrete3",
        "target_weight",
        "continuous",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning_rate: {type: float, low: 0.1, high: 0.01}", "learning_rate: low 0.1 must be below high 0.01"),
        ("gamma: {type: float, low: 0, high: 1, log: true}", "log: true needs low > 0"),
        ("reward: {type: categorical, choices: []}", "reward.choices: List should have at least 1 item"),
        ("n_epochs: {type: normal, low: 1, high: 3}", "n_epochs: Input tag 'normal' found"),
        ("n_epochs: {type: int, low: 1, high: 3, typo: 1}", "n_epochs.typo: Extra inputs are not permitted"),
        ("{}", "the search space names no setting"),
        ("learning_rate: [1, 2", "not valid YAML at line"),
    ],
)
def test_a_bad_search_space_file_is_one_line_naming_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="search space") as caught:
        load_search_space(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_search_space_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read it"):
        load_search_space(tmp_path / "absent.yaml")


def test_the_password_comes_from_the_secret_and_is_never_shown() -> None:
    url = with_password("postgresql+psycopg://finrl@db:5432/optuna", "s3cret/@:")
    assert url.startswith("postgresql+psycopg://finrl:") and "s3cret" in url.replace("%2F", "/").replace("%40", "@")
    assert "s3cret" not in masked(url) and "***" in masked(url)
    assert with_password("postgresql+psycopg://finrl:given@db/optuna", "other").endswith("finrl:given@db/optuna")
    assert with_password("sqlite:///studies/spy.db", "unused") == "sqlite:///studies/spy.db"


def test_an_unreachable_storage_is_one_line_without_the_password() -> None:
    config = StorageConfig("postgresql+psycopg://finrl:hunter2@127.0.0.1:1/optuna", 1, 3)
    with pytest.raises(StorageError) as caught:
        open_storage(config)
    message = str(caught.value)
    assert message.startswith("cannot open the study storage postgresql+psycopg://finrl:***@127.0.0.1:1/optuna: ")
    assert "hunter2" not in message and "\n" not in message


def test_the_grace_period_must_exceed_the_heartbeat() -> None:
    with pytest.raises(ConfigError, match="grace period"):
        StorageConfig("sqlite:///x.db", 10, 10)


def test_a_study_keeps_its_definition_and_refuses_another(tmp_path: Path) -> None:
    storage = open_storage(StorageConfig(f"sqlite:///{tmp_path}/studies/s.db", 1, 3))  # the folder is created
    study = optuna.create_study(study_name="s", storage=storage)
    plan = FoldPlan("rolling", 1, 3, 3, 3, date(2016, 1, 4), date(2018, 3, 1))
    definition = StudyDefinition({"symbol": "SPY"}, plan, (1, 2), load_search_space(None))
    assert store_definition(study, definition) is True
    assert store_definition(study, definition) is False  # the same init again: harmless
    assert read_definition(optuna.load_study(study_name="s", storage=storage)) == definition
    with pytest.raises(ConfigError, match=r"another definition .*seeds"):
        store_definition(study, StudyDefinition({"symbol": "SPY"}, plan, (1,), definition.space))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_dsr_from_a_trial_s_kept_moments_is_the_dsr_of_its_returns(seed: int) -> None:
    """Trials keep four numbers instead of their returns (every sampler reads every trial); nothing is lost."""
    rng = np.random.default_rng(seed)
    returns = rng.standard_t(4, 500) * 0.01 + 0.0004
    kept = ReturnMoments.from_json(json.loads(json.dumps(ReturnMoments.of(returns).to_json())))
    for n_trials, variance in ((1, 0.0), (40, 0.002)):
        expected = statistics.deflated_sharpe_ratio(returns, n_trials, variance)
        assert _dsr(kept, n_trials, variance) == pytest.approx(expected, rel=1e-12)
    assert ReturnMoments.of(np.zeros(10)) == ReturnMoments(10, 0.0, 0.0, 3.0)


def test_trials_beyond_the_study_s_number_are_refused_in_trial_number_order() -> None:
    """Workers that start together: the storage numbers their trials, and only the first N live ones run."""
    study = optuna.create_study()
    running = [study.ask() for _ in range(3)]
    late = study.ask()
    for trial in running:
        _claim(trial, 3)
    with pytest.raises(SurplusTrialError, match="had its 3 trials when trial 3 started"):
        _claim(late, 3)
    study.tell(running[0], state=optuna.trial.TrialState.FAIL)  # a failed trial frees its place
    _claim(late, 3)


def test_a_searched_value_is_checked_on_its_own_not_against_other_settings() -> None:
    """batch_size 2048 exceeds the default rollout, but n_steps is searched too: the trial decides."""
    from finrl.applications.spy_rl_trading.commands.tune import check_search_space

    choices = {"n_steps": [1024], "batch_size": [2048]}
    together = parse_search_space({k: {"type": "categorical", "choices": v} for k, v in choices.items()}, "test")
    check_search_space(together)
    with pytest.raises(ConfigError, match=r"^search space: gamma=1.5: Input should be less than or equal to 1$"):
        check_search_space(parse_search_space({"gamma": {"type": "float", "low": 0.5, "high": 1.5}}, "test"))
