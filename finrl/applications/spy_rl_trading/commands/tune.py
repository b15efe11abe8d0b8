"""``spy-rl tune``: hyperparameter and design search on an Optuna study (SQLite or PostgreSQL).

``init`` writes what the study evaluates (data and settings, fold plan, seeds, search space) into
the study once; ``run`` workers, any number on any machines, read it from there and share the
study's trials; ``best`` trains the best configuration's bundles; ``report`` writes the HTML page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from finrl.applications.spy_rl_trading.cli_support import (
    DATA_FLAGS,
    EXECUTION_FLAGS,
    TRAINING_FLAGS,
    Flag,
    echo_lines,
    settings_command,
)
from finrl.applications.spy_rl_trading.commands.research import (
    SchemeOption,
    StepMonthsOption,
    TestMonthsOption,
    TrainYearsOption,
    ValMonthsOption,
    fold_plan,
    parse_seeds,
)
from finrl.applications.spy_rl_trading.settings import SECRET_FIELDS, Settings, env_name
from finrl.errors import ConfigError
from finrl.schemas import problems

if TYPE_CHECKING:
    import optuna

    from finrl.agents.bundle import ModelBundle
    from finrl.research.tune.space import SearchSpace
    from finrl.research.tune.study import StudyDefinition
    from finrl.research.walkforward import WalkForward, WalkForwardConfig

TUNE_EXTRA_HINT = (
    "tuning needs the tune and train extras (Optuna, psycopg, plotly; torch): pip install 'finrl[train,tune]'"
)
STORAGE_FLAGS = (
    Flag("tune_storage", ("--storage",)),
    Flag("tune_heartbeat_interval", ("--heartbeat-interval",)),
    Flag("tune_grace_period", ("--grace-period",)),
)
# a worker's own: where it keeps files and how it logs and computes; everything else comes from the study
LOCAL_FIELDS = ("datasets_dir", "results_dir", "tensorboard_log_dir", "trained_models_dir", "logs_dir", "offline",
                "torch_threads", "log_level", "log_json", *SECRET_FIELDS, "tune_heartbeat_interval",
                "tune_grace_period")  # fmt: skip
WORKER_FLAGS = (Flag("datasets_dir"), Flag("offline", ("--offline/--online",)), Flag("results_dir"),
                Flag("tensorboard_log_dir", ("--tensorboard-dir",)), Flag("torch_threads"))  # fmt: skip
# settings a search space may draw: what shapes a trained policy (not folders, names, seeds or devices)
NOT_SEARCHABLE = frozenset({"random_seed", "run_name", "trained_models_dir", "tensorboard_log_dir", "torch_threads",
                            "device", "checkpoint_freq", "eval_freq", "total_timesteps", "n_envs"})  # fmt: skip
SEARCHABLE = tuple(f.field for f in (*TRAINING_FLAGS, *EXECUTION_FLAGS) if f.field not in NOT_SEARCHABLE)

Study = Annotated[str, typer.Option("--study", help="Study name (letters, digits, . _ -)")]

tune_app = typer.Typer(help="Hyperparameter and design search on an Optuna study (SQLite or PostgreSQL).",
                       no_args_is_help=True)  # fmt: skip


def init_command(
    ctx: typer.Context,
    settings: Settings,
    study: Study,
    search_space: Annotated[Path | None, typer.Option(help="YAML search space (default: the built-in one)")] = None,
    scheme: SchemeOption = "rolling",
    train_years: TrainYearsOption = 5,
    val_months: ValMonthsOption = 12,
    test_months: TestMonthsOption = 12,
    step_months: StepMonthsOption = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds trained per fold and trial")] = "1,2,3",
) -> None:
    """Create the study once, with what it evaluates: data, settings, fold plan, seeds, search space.

    Workers (spy-rl tune run) read all of it from the study. Running init again with the same
    arguments is harmless; with other arguments it is refused.
    """
    _require_tune_extra()
    from finrl.research.tune.space import load_search_space
    from finrl.research.tune.storage import create_study, masked
    from finrl.research.tune.study import StudyDefinition, store_definition
    from finrl.research.walkforward import WalkForward

    space = load_search_space(search_space)
    check_search_space(space)
    data = settings.feature_data()
    plan = fold_plan(settings, data.features.index, scheme, train_years, val_months, test_months, step_months)
    if plan.step_months < plan.val_months:  # a trial's validation returns are its folds' windows end to end
        raise ConfigError(
            f"--step-months {plan.step_months} is shorter than --val-months {plan.val_months}: validation windows "
            "would overlap and the report's Deflated Sharpe Ratio would count their shared days twice"
        )
    definition = StudyDefinition(settings.snapshot(), plan, parse_seeds(seeds), space)
    # the folds as every trial plans them; the config refuses what a trial could not run
    folds = WalkForward.plan(settings.walkforward_config(plan, definition.seeds, workers=1), data).folds
    storage, url = _storage(settings)
    optuna_study, created = create_study(storage, _study_name(study))
    store_definition(optuna_study, definition)
    echo_lines(
        [
            f"study:        {optuna_study.study_name} ({'created' if created else 'exists'}) in {masked(url)}",
            f"trials:       {len(optuna_study.trials)} so far",
            f"folds:        {len(folds)} x {len(definition.seeds)} seed(s), {settings.total_timesteps} timesteps each",
            f"search space: {', '.join(space.root)}",
        ]
    )


def run_command(
    ctx: typer.Context,
    settings: Settings,
    study: Study,
    n_trials: Annotated[int, typer.Option(help="The study's number of finished trials (all workers together)")],
    timeout: Annotated[float | None, typer.Option(help="Start no trial after this many seconds")] = None,
) -> None:
    """A worker: run trials until the study has --n-trials finished ones. Start any number, anywhere.

    SIGTERM fails the trial in progress with the reason (a training stops after its current step)
    and exits 143; a second SIGTERM ends the worker at once.
    """
    if n_trials < 1:
        raise ConfigError("--n-trials must be at least 1")
    _require_tune_extra(trains=True)
    from finrl.research.tune.objective import TrialSetup
    from finrl.research.tune.stop import StopRequest
    from finrl.research.tune.worker import quiet_optuna, run_worker, worker_id

    optuna_study, definition = _open_study(settings, study)
    base = _study_settings(definition, settings)
    data = base.feature_data()
    stop = StopRequest()
    setup = TrialSetup(
        data=data,
        space=definition.space,
        config_for=lambda params: _walkforward_config(definition, base, params),
        n_trials=n_trials,
        worker=worker_id(),
        stop=stop,
    )
    poll = min(5.0, settings.tune_heartbeat_interval)
    with stop.installed(), quiet_optuna():
        summary = run_worker(optuna_study, setup, timeout, poll)
    ran = ", ".join(f"{count} {state.lower()}" for state, count in sorted(summary.ran.items())) or "none"
    lines = [
        f"worker:       {setup.worker}",
        f"trials here:  {ran}",
        f"study:        {summary.study_finished} of {n_trials} trials finished"
        + (" (timed out)" if summary.timed_out else ""),
    ]
    if any(t.state.name == "COMPLETE" for t in optuna_study.get_trials(deepcopy=False)):
        best = optuna_study.best_trial
        lines.append(f"best so far:  trial {best.number}, validation score {best.value:.4f}")
    echo_lines(lines)


def best_command(
    ctx: typer.Context,
    settings: Settings,
    study: Study,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds: one bundle each")] = "1,2,3",
) -> None:
    """Train the best trial's configuration once per seed as normal bundles (study, trial, params in each),
    and with two seeds or more an ensemble bundle of them (mean weight, as the walk-forward's seeds).

    Each trains on the study's last fold's training window and keeps its checkpoint by that fold's
    validation window, so a backtest's default window starts after everything that chose it.
    """
    _require_tune_extra(trains=True)
    from finrl.agents.bundle import TuneOrigin
    from finrl.applications.spy_rl_trading.training_run import run_training
    from finrl.research.tune.best import export_best
    from finrl.research.tune.report import best_trial
    from finrl.research.walkforward import WalkForward

    optuna_study, definition = _open_study(settings, study)
    best = best_trial(optuna_study)
    base = _study_settings(definition, settings)
    walk = WalkForward.plan(_walkforward_config(definition, base, best.params), base.feature_data())
    first, last = walk.folds[0], walk.folds[-1]  # the study saw first.train.start .. last.validation.end
    chosen = _as_last_fold(walk, {**base.snapshot(), **_local(base), **best.params})
    origin = TuneOrigin(study=optuna_study.study_name, trial=best.number, value=best.value, params=best.params,
                        selection_start=first.train.start, selection_end=last.validation.end)  # fmt: skip

    def train_seed(seed: int, staging: Path, run_name: str) -> ModelBundle:
        seeded = chosen.model_copy(update={"random_seed": seed, "run_name": run_name, "trained_models_dir": staging})
        return run_training(seeded).bundle

    prefix = f"tune-{optuna_study.study_name}-trial{best.number}"
    parsed = parse_seeds(seeds)
    ensemble = (f"{prefix}-ensemble", chosen.rebalance_band) if len(parsed) > 1 else None
    export = export_best(parsed, settings.trained_models_dir, lambda seed: f"{prefix}-seed{seed}", train_seed,
                         origin, ensemble)  # fmt: skip
    lines = [
        f"best trial:   {best.number}, validation score {best.value:.4f}",
        f"chosen on:    {first.train.start}..{last.validation.end} (trained on the last fold's windows; "
        "backtest after this)",
    ]
    lines += [f"model:        {bundle.path}" for bundle in export.bundles]
    if export.ensemble:
        lines.append(f"ensemble:     {export.ensemble}")
    echo_lines(lines)


def _as_last_fold(walk: WalkForward, values: dict[str, Any]) -> Settings:
    """Settings ``values`` trained as the trial trained its last fold: that fold's training and validation
    windows, the walk-forward's validation frequency. The test window defaults to the days after them."""
    last = walk.folds[-1]
    windows = {"train_start": last.train.start, "train_end": last.train.end, "val_start": last.validation.start,
               "val_end": last.validation.end, "test_start": None, "test_end": None}  # fmt: skip
    return _validated({**values, **windows, "eval_freq": walk.config.eval_freq})


def report_command(
    ctx: typer.Context,
    settings: Settings,
    study: Study,
    output: Annotated[Path | None, typer.Option(help="HTML file (default: <results-dir>/tune-<study>.html)")] = None,
) -> None:
    """One offline HTML page: optimisation history, parameter importances, parallel coordinates, and the
    Deflated Sharpe Ratio of the best trial against the study's number of trials."""
    _require_tune_extra()
    from finrl.research.tune.report import write_report

    optuna_study, _ = _open_study(settings, study)
    path = output or Path(settings.results_dir) / f"tune-{optuna_study.study_name}.html"
    summary = write_report(optuna_study, path)
    dsr = "n/a" if summary.dsr is None else f"{summary.dsr:.3f}"
    echo_lines(
        [
            f"trials:       {', '.join(f'{n} {s.lower()}' for s, n in summary.states.items())}",
            f"best trial:   {summary.best_number}, validation score {summary.best_value:.4f}",
            f"params:       {', '.join(f'{k}={v}' for k, v in sorted(summary.best_params.items()))}",
            f"DSR:          {dsr} ({summary.n_trials} distinct configurations x seeds counted)",
            f"report:       {path}",
        ]
    )


# ---------------------------------------------------------------------------- helpers


def _require_tune_extra(*, trains: bool = False) -> None:
    """The tune library is imported inside each command (Optuna, SQLAlchemy and plotly cost other commands
    nothing). Only the commands that train (run, best) need torch; init and report read and write the study."""
    try:
        import optuna
        import plotly  # noqa: F401

        if trains:
            import torch  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError(TUNE_EXTRA_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happened


def _study_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
        raise ConfigError(f"--study {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def _storage(settings: Settings) -> tuple[optuna.storages.RDBStorage, str]:
    from finrl.log import register_secrets
    from finrl.research.tune import storage

    password = settings.tune_storage_password.get_secret_value() if settings.tune_storage_password else None
    url = storage.with_password(settings.tune_storage, password)
    register_secrets([storage.url_password(url)])  # also a password written into the URL itself
    config = storage.StorageConfig(url, settings.tune_heartbeat_interval, settings.tune_grace_period)
    return storage.open_storage(config), url


def _open_study(settings: Settings, name: str) -> tuple[optuna.Study, StudyDefinition]:
    from finrl.research.tune.storage import load_study
    from finrl.research.tune.study import read_definition

    storage, url = _storage(settings)
    study = load_study(storage, _study_name(name), url)
    return study, read_definition(study)


def _local(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in LOCAL_FIELDS}


def _study_settings(definition: StudyDefinition, local: Settings) -> Settings:
    """The study's settings, with this worker's folders, logging and secrets."""
    return _validated({**definition.settings, **_local(local)})


def _validated(values: dict[str, Any]) -> Settings:
    try:
        return Settings.model_validate(values)  # no environment read: the values are complete
    except ValidationError as exc:
        field, message, _ = problems(exc)[0]
        where = f"{env_name(field)}: " if field in Settings.model_fields else ""
        raise ConfigError(f"invalid setting {where}{message}") from None


def check_search_space(space: SearchSpace) -> None:
    """Each name is a searchable setting and each value (range ends, choices) a valid one on its own.

    "On its own" means against the setting's declared type and bounds only, not through ``Settings``:
    its cross-field rules (batch_size at most n_steps x n_envs, weight levels for target_weight) depend
    on what else a trial draws, so a value is neither refused nor let through because of the current
    value of another setting. A drawn combination that breaks such a rule fails its trial with the
    reason, and a worker stops after several in a row (see ``finrl.research.tune.worker``).
    """
    from pydantic import create_model

    for name in space.root:
        if name not in SEARCHABLE:
            raise ConfigError(
                f"search space: {name!r} is not a setting a trial can draw (one of {', '.join(SEARCHABLE)})"
            )
        field = Settings.model_fields[name]
        # a model of this one field: its type and constraints, none of Settings' cross-field rules
        alone = create_model(f"Searched_{name}", value=(field.annotation or Any, field))
        for value in space.candidate_values(name):
            try:
                alone.model_validate({"value": value})
            except ValidationError as exc:
                raise ConfigError(f"search space: {name}={value!r}: {problems(exc)[0][1]}") from None


def _walkforward_config(definition: StudyDefinition, base: Settings, params: dict[str, Any]) -> WalkForwardConfig:
    settings = _validated({**base.snapshot(), **_local(base), **params})
    return settings.walkforward_config(definition.plan, definition.seeds, workers=1)  # parallel trials: workers


TUNE_EXAMPLES = {
    "init": "spy-rl tune init --study spy --source sample --seeds 1,2,3\n"
    "spy-rl tune init --study spy --storage postgresql+psycopg://optuna@db/optuna --source yahoo",
    "run": "spy-rl tune run --study spy --n-trials 50\nspy-rl tune run --study spy --n-trials 50 --timeout 3600",
    "best": "spy-rl tune best --study spy --seeds 1,2,3 --models-dir trained_models",
    "report": "spy-rl tune report --study spy --output results/tune-spy.html",
}


def register(app: typer.Typer) -> None:
    decorate = settings_command
    init_flags = (
        STORAGE_FLAGS,
        DATA_FLAGS,
        TRAINING_FLAGS,
        EXECUTION_FLAGS,
        (Flag("risk_free_rate"), Flag("results_dir")),
    )
    tune_app.command("init", epilog=TUNE_EXAMPLES["init"])(decorate(*init_flags)(init_command))
    tune_app.command("run", epilog=TUNE_EXAMPLES["run"])(decorate(STORAGE_FLAGS, WORKER_FLAGS)(run_command))
    tune_app.command("best", epilog=TUNE_EXAMPLES["best"])(
        decorate(STORAGE_FLAGS, (Flag("trained_models_dir", ("--models-dir",)), *WORKER_FLAGS))(best_command)
    )
    tune_app.command("report", epilog=TUNE_EXAMPLES["report"])(
        decorate(STORAGE_FLAGS, (Flag("results_dir"),))(report_command)
    )
    app.add_typer(tune_app, name="tune")
