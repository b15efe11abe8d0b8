"""Where a study lives: Optuna's RDB storage on SQLite (one machine) or PostgreSQL (many).

Workers share nothing but this storage: no scheduler, queue or lock service of our own. Each
running trial records a heartbeat; a trial whose worker died (SIGKILL, a lost node) stops
beating, is marked FAIL after the grace period by the next worker that looks, and is queued
again once with the same parameters (Optuna's retry callback).

A storage URL may hold a password: it is never logged or printed (:func:`masked`), and it can
come from a secret file instead of the URL (:func:`with_password`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finrl.errors import ConfigError, FinRLError

if TYPE_CHECKING:
    import optuna

MAX_RETRY = 1  # a trial whose worker died runs once more; a second death is the trial's, not bad luck


class StorageError(FinRLError):
    """The study's storage cannot be reached or opened, or the study is not there."""


@dataclass(frozen=True)
class StorageConfig:
    url: str
    heartbeat_interval: int  # seconds between a running trial's heartbeats
    grace_period: int  # seconds without a heartbeat before a running trial counts as dead

    def __post_init__(self) -> None:
        if self.heartbeat_interval < 1 or self.grace_period <= self.heartbeat_interval:
            raise ConfigError(
                f"the grace period ({self.grace_period} s) must exceed the heartbeat interval "
                f"({self.heartbeat_interval} s), which must be at least 1 s"
            )


def with_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` filled in where the URL names a user but no password."""
    if not password:
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.password is not None or parsed.drivername.startswith("sqlite"):
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


def masked(url: str) -> str:
    """``url`` with any password replaced by ``***``: the form logs and errors show."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy can parse: show only its scheme
        return url.split(":", 1)[0] + "://..."


def url_password(url: str) -> str | None:
    """The password written in ``url``, if any (so that logging can mask it)."""
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:
        return None
    return str(password) if password else None


def open_storage(config: StorageConfig) -> optuna.storages.RDBStorage:
    """The RDB storage with heartbeats and one retry of a dead worker's trial; tables made if missing."""
    import optuna
    import sqlalchemy.exc

    _prepare_sqlite_folder(config.url)
    try:
        with warnings.catch_warnings():  # heartbeats and the retry callback are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                config.url,
                engine_kwargs=_engine_kwargs(config.url),
                heartbeat_interval=config.heartbeat_interval,
                grace_period=config.grace_period,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            )
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        raise StorageError(f"cannot open the study storage {masked(config.url)}: {_reason(exc, config.url)}") from None


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # several local workers write one file: wait for the lock rather than fail at once
        return {"connect_args": {"timeout": 60}}
    # one worker needs one connection at a time (plus the heartbeat thread's); check before use so that
    # a connection the server dropped during a long trial is replaced instead of failing the trial
    return {"pool_size": 2, "max_overflow": 2, "pool_pre_ping": True}


def _prepare_sqlite_folder(url: str) -> None:
    """SQLite creates the file but not its folder (``studies/`` for the default URL)."""
    if not url.startswith("sqlite:///") or url in ("sqlite://", "sqlite:///:memory:"):
        return
    from pathlib import Path

    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _reason(exc: BaseException, url: str) -> str:
    """The first line of a driver error, with the password (if any) masked."""
    original = getattr(exc, "orig", None) or exc
    text = (str(original).strip().splitlines() or [type(original).__name__])[0]
    password = url_password(url)
    return text.replace(password, "***") if password else text


def load_study(storage: optuna.storages.RDBStorage, name: str, url: str) -> optuna.Study:
    """The existing study ``name``: workers never create one (``spy-rl tune init`` does, once)."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage, sampler=_sampler(), pruner=pruner())
    except KeyError:
        raise StorageError(f"no study named {name!r} in {masked(url)}: create it with spy-rl tune init") from None


def create_study(storage: optuna.storages.RDBStorage, name: str) -> tuple[optuna.Study, bool]:
    """Create the study, or load it when it exists (also when another process created it just now).

    Returns the study and whether this call created it.
    """
    import optuna

    before = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=_sampler(),
        pruner=pruner(),
        load_if_exists=True,  # two inits at once: one creates, the other loads; neither fails
    )
    return study, name not in before


def pruner() -> optuna.pruners.BasePruner:
    """Median pruning on the per-fold intermediate values: a trial below the median of earlier trials
    at the same fold stops there. The first trials (Optuna's default of 5) are never pruned: they set
    the median."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)


def _sampler() -> optuna.samplers.BaseSampler:
    """TPE without a fixed seed: workers with one seed would all draw the same first trials."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler()
