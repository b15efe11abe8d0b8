"""Ensemble bundles: several model bundles acting as one, loaded by backtests and paper trading
like any other bundle.

``<models_dir>/<name>/`` holds ``bundle.json`` (``kind: ensemble``: the rule, the anchor, the
ensemble's own env config, and each member's run name with the SHA-256 of its manifest and policy)
and ``members/<run>/``: a copy of each member bundle (its manifest and the model files it lists, not
its checkpoints), so the ensemble is self-contained and every file is hash-checked on load. The
folder is assembled aside and renamed into place whole. ``latest`` does not move: it names the last
*trained* model (a deployment that follows it keeps trading what it trained, and ``--model latest``
still means that model when the next ensemble is assembled); name the ensemble to use it.

Members must make comparable decisions: the same feature schema (feature spec and observation
columns), symbol, execution rule and costs, and starting cash. Each keeps its own normalisation.
What the ensemble decides and how it trades: :mod:`finrl.agents.ensemble`.

**The anchor.** A member's decision depends on its shadow book, so the book must start somewhere.
A backtest starts the books on its window's first day. The paper trader, whose account holds only
the ensemble's book, rebuilds them by replaying every member from a fixed **anchor** date (the first
session on or after it) up to the decision day (milliseconds per year of NumPy policy). The anchor is
recorded when the ensemble is made, by default the day after the latest end of what the members
saw (training or validation): the first day of the default backtest window, so a paper decision
on day t equals the default backtest's decision on day t. Starting from the feed's first day
instead would make decisions drift as a growing or rolling feed moves, and change after a restart.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from finrl.agents.bundle import (
    MANIFEST_FILE,
    POLICY_FILE,
    BundleError,
    EnvConfigField,
    ModelBundle,
    bundle_from_manifest,
    is_ensemble,
    library_versions,
    load_bundle,
    read_manifest,
    resolve_bundle,
    sha256_file,
    sigterm_raises,
    staging_dir,
    validate_document,
)
from finrl.agents.ensemble import RULES, EnsembleDecisions, Rule, replay_members
from finrl.calendar import trading_sessions
from finrl.errors import ConfigError, DataError
from finrl.fileio import atomic_write_json, fsync_dir
from finrl.meta.env.execution import ExecutionConfig
from finrl.meta.env.spy_env import EnvConfig
from finrl.meta.features import FeatureSpec
from finrl.meta.preprocessing import DataSplit, DateWindow

ENSEMBLE_FORMAT = 1
MEMBERS_DIR = "members"


class MemberRecord(BaseModel):
    """A member as the ensemble pinned it: a changed manifest or policy is refused on load."""

    model_config = ConfigDict(frozen=True)

    run_name: str = Field(min_length=1)
    manifest_sha256: str
    policy_sha256: str


class EnsembleManifest(BaseModel):
    """An ensemble's ``bundle.json``, parsed once. ``settings`` and ``data`` hold what all members share
    (a backtest or the trader reads the data they were trained on, as for one bundle)."""

    model_config = ConfigDict(frozen=True, extra="allow", arbitrary_types_allowed=True)

    format: int
    kind: Literal["ensemble"]
    run_name: str = Field(min_length=1)
    rule: Rule
    anchor: date
    env_config: EnvConfigField  # the ensemble's own book: continuous target weights, the shared execution
    members: tuple[MemberRecord, ...]
    settings: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def parse(cls, document: dict[str, Any], source: Path) -> EnsembleManifest:
        if document.get("format") != ENSEMBLE_FORMAT:
            raise BundleError(
                f"{source.parent}: ensemble format {document.get('format')!r}, this finrl reads {ENSEMBLE_FORMAT}"
            )
        return validate_document(cls, document, source)

    @property
    def data_fingerprint(self) -> str | None:
        value = self.data.get("fingerprint")  # present only when every member was trained on the same data
        return str(value) if value is not None else None


@dataclass(frozen=True)
class EnsembleBundle:
    """The members (each a loaded, hash-checked :class:`ModelBundle`) and the rule that combines them."""

    path: Path
    manifest: EnsembleManifest
    members: tuple[ModelBundle, ...]

    @property
    def run_name(self) -> str:
        return self.manifest.run_name

    @property
    def rule(self) -> Rule:
        return self.manifest.rule

    @property
    def anchor(self) -> date:
        return self.manifest.anchor

    @property
    def env_config(self) -> EnvConfig:
        return self.manifest.env_config

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.members[0].feature_spec  # the members agree (checked when made and loaded)

    @property
    def split(self) -> DataSplit:
        """The span of the members' windows: what the ensemble as a whole has seen."""
        splits = [member.split for member in self.members]
        validations = [s.validation for s in splits if s.validation is not None]
        return DataSplit(_span([s.train for s in splits]), _span(validations) if validations else None, None)

    def check_features(self, features: pd.DataFrame) -> None:
        for member in self.members:
            member.check_features(features)

    def replay(self, frame: pd.DataFrame, history: pd.DataFrame, execution: ExecutionConfig) -> EnsembleDecisions:
        """The members' shadow books from flat on ``frame``'s first day (a backtest's window)."""
        return replay_members(self.members, self.rule, frame, history, execution)

    def decide_after(self, features: pd.DataFrame, execution: ExecutionConfig) -> EnsembleDecisions:
        """The decisions after every close from the anchor to ``features``' last day (the paper trader's today)."""
        check_covers_anchor(features, self.anchor)
        frame = features.loc[pd.Timestamp(self.anchor) :]
        if frame.empty:
            raise DataError(
                f"ensemble {self.run_name} starts its members' books on {self.anchor}; "
                f"the data ends {features.index[-1]:%Y-%m-%d}, before it"
            )
        return self.replay(frame, features, execution)


AnyBundle = ModelBundle | EnsembleBundle  # what backtests and the paper trader act with


def _span(windows: Sequence[DateWindow]) -> DateWindow:
    return DateWindow(min(w.start for w in windows), max(w.end for w in windows))


def check_covers_anchor(features: pd.DataFrame, anchor: date) -> None:
    """Refuse data that starts after the anchor's first session: the books would start later, and drift."""
    first = pd.DatetimeIndex(features.index)[0]
    if first.date() <= anchor:
        return
    if len(trading_sessions(pd.Timestamp(anchor), first - pd.Timedelta(days=1))):
        raise DataError(
            f"the data's features start {first:%Y-%m-%d}, after the ensemble's anchor {anchor}: "
            "load data from before it (--start)"
        )


# ---------------------------------------------------------------- loading


def load_any_bundle(reference: str | Path, models_dir: Path) -> AnyBundle:
    """A model bundle or an ensemble, by path, run name or ``latest``: what backtests and the trader load."""
    path = resolve_bundle(reference, models_dir)
    document = read_manifest(path)
    return load_ensemble_at(path, document) if is_ensemble(document) else bundle_from_manifest(path, document)


def load_ensemble_at(path: Path, document: dict[str, Any]) -> EnsembleBundle:
    manifest = EnsembleManifest.parse(document, path / MANIFEST_FILE)
    members = tuple(_load_member(path, record) for record in manifest.members)
    check_members(members, manifest.rule)
    _check_execution(manifest.env_config, members)
    return EnsembleBundle(path, manifest, members)


def _load_member(path: Path, record: MemberRecord) -> ModelBundle:
    folder = path / MEMBERS_DIR / record.run_name
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        raise BundleError(f"ensemble {path}: member {record.run_name} is missing ({manifest})")
    if sha256_file(manifest) != record.manifest_sha256:
        raise BundleError(
            f"ensemble {path}: member {record.run_name}'s {MANIFEST_FILE} does not match "
            "its recorded SHA-256 (corrupt or modified)"
        )
    member = load_bundle(folder, folder.parent)  # checks the member's own files against its manifest
    if member.manifest.files.get(POLICY_FILE) != record.policy_sha256:
        raise BundleError(f"ensemble {path}: member {record.run_name}'s {POLICY_FILE} is not the one it was made with")
    return member


# ---------------------------------------------------------------- agreement


def check_members(members: Sequence[ModelBundle], rule: str) -> None:
    """Refuse members whose decisions are not comparable, in one line naming the first disagreement."""
    if rule not in RULES:
        raise ConfigError(f"unknown ensemble rule {rule!r}: choose {' or '.join(RULES)}")
    if len(members) < 2:
        raise BundleError(f"an ensemble needs at least 2 model bundles, got {len(members)}")
    _check_distinct(members)
    first = members[0]
    for other in members[1:]:
        for what, a, b in _compared(first, other):
            difference = _first_difference(a, b)
            if difference is not None:
                where, left, right = difference
                raise BundleError(
                    f"ensemble members disagree on {what}{f' ({where})' if where else ''}: "
                    f"{first.run_name} has {left!r}, {other.run_name} has {right!r}"
                )
    if rule == "majority":
        continuous = [m.run_name for m in members if m.env_config.action_space == "continuous"]
        if continuous:
            raise BundleError(
                f"--rule majority needs members with discrete decisions; {', '.join(continuous)} "
                "decide continuous weights (use --rule mean_weight)"
            )


def _check_distinct(members: Sequence[ModelBundle]) -> None:
    """Each member once, each with policy arrays (the ensemble acts without torch)."""
    names: set[str] = set()
    policies: dict[str, str] = {}
    for member in members:
        policy = member.manifest.files.get(POLICY_FILE)
        if policy is None:
            raise BundleError(
                f"{member.path} predates torch-free inference (no {POLICY_FILE}): "
                f"convert it first with `spy-rl runs convert {member.path}`"
            )
        if member.run_name in names:
            raise BundleError(f"duplicate ensemble member: {member.run_name} is given twice")
        if policy in policies:
            raise BundleError(
                f"duplicate ensemble member: {member.run_name} holds the same policy as {policies[policy]}"
            )
        names.add(member.run_name)
        policies[policy] = member.run_name


def _compared(a: ModelBundle, b: ModelBundle) -> list[tuple[str, Any, Any]]:
    """What must be equal between two members: (name, a's value, b's value)."""
    return [
        ("the feature spec", asdict(a.feature_spec), asdict(b.feature_spec)),
        ("the observation columns", list(a.normalizer.columns), list(b.normalizer.columns)),
        ("the symbol", _symbol(a), _symbol(b)),
        ("the execution", asdict(a.env_config.execution), asdict(b.env_config.execution)),
        ("the starting cash", a.env_config.initial_cash, b.env_config.initial_cash),
    ]


def _symbol(bundle: ModelBundle) -> str | None:
    symbol = bundle.manifest.data.get("symbol", bundle.manifest.settings.get("symbol"))
    return str(symbol).upper() if symbol is not None else None


def _first_difference(a: Any, b: Any, where: str = "") -> tuple[str, Any, Any] | None:
    """``(dotted key, a's value, b's value)`` of the first place two JSON-like values differ, else None."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
            if found is not None:
                return found
        return None
    return (where, a, b) if a != b else None


def _check_execution(config: EnvConfig, members: Sequence[ModelBundle]) -> None:
    first = members[0].env_config
    if (config.execution, config.initial_cash) != (first.execution, first.initial_cash):
        raise BundleError("the ensemble's execution differs from its members': corrupt or modified bundle.json")
    if config.action_space != "continuous":  # its book trades target weights: the backtest and the trader alike
        raise BundleError(
            f"the ensemble's action space is {config.action_space}, not continuous: corrupt or modified bundle.json"
        )


# ---------------------------------------------------------------- making one


def default_anchor(members: Sequence[ModelBundle]) -> date:
    """The day after the latest day any member saw (training or validation)."""
    return max(m.split.seen_end for m in members) + timedelta(days=1)


def default_name(rule: str, members: Sequence[ModelBundle]) -> str:
    """The same members and rule always get the same name (a second identical ensemble is refused)."""
    digest = hashlib.sha256(json.dumps([rule, *(m.run_name for m in members)]).encode()).hexdigest()[:8]
    return f"ensemble-{rule.replace('_', '-')}-{digest}"


def create_ensemble(
    references: Sequence[str | Path],
    models_dir: Path,
    *,
    rule: str,
    rebalance_band: float,
    name: str | None = None,
    anchor: date | None = None,
) -> EnsembleBundle:
    """Load the members, check they agree, and publish ``<models_dir>/<name>/`` whole (``latest`` stays)."""
    members = [load_bundle(reference, models_dir) for reference in references]
    check_members(members, rule)
    run_name = name or default_name(rule, members)
    if Path(run_name).name != run_name or run_name in (".", ".."):
        raise ConfigError(f"ensemble name {run_name!r} is not a folder name")
    final = Path(models_dir) / run_name
    if final.exists() or final.is_symlink():
        raise BundleError(f"a model named {run_name} already exists in {models_dir}: choose another --name")
    manifest = _manifest(members, run_name, rule, rebalance_band, anchor or default_anchor(members))
    with sigterm_raises():  # docker stop, Kubernetes: the staging folder is removed, as on any failure
        staging = staging_dir(models_dir, run_name)
        try:
            for member in members:
                _copy_member(member, staging / MEMBERS_DIR / member.run_name)
            atomic_write_json(staging / MANIFEST_FILE, {**manifest, "members": _member_records(members, staging)})
            staging.rename(final)
            fsync_dir(Path(models_dir))
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone after the rename; removed on any failure
    return load_ensemble_at(final, read_manifest(final))


def _manifest(members: Sequence[ModelBundle], run_name: str, rule: str, band: float, anchor: date) -> dict[str, Any]:
    first = members[0].env_config
    try:
        config = replace(first, action_space="continuous", rebalance_band=band)
    except ValueError as exc:
        raise ConfigError(f"ensemble rebalance band: {exc}") from None
    return {
        "format": ENSEMBLE_FORMAT,
        "kind": "ensemble",
        "run_name": run_name,
        "rule": rule,
        "anchor": anchor.isoformat(),
        "env_config": config.to_dict(),
        "settings": _shared([m.manifest.settings for m in members]),
        "data": _shared([m.manifest.data for m in members]),
        "created_at": datetime.now(UTC).isoformat(),
        "versions": library_versions(),
    }


def _shared(documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The entries every document has with the same value."""
    first = documents[0]
    return {k: v for k, v in first.items() if all(k in d and d[k] == v for d in documents[1:])}


def _copy_member(member: ModelBundle, target: Path) -> None:
    """The member's manifest and the files it lists (hash-checked again when the ensemble loads)."""
    target.mkdir(parents=True)
    for name in (MANIFEST_FILE, *member.manifest.files):
        shutil.copy2(member.path / name, target / name)


def _member_records(members: Sequence[ModelBundle], staging: Path) -> list[dict[str, str]]:
    """Each member's pinned hashes, in the given order, read from the copies: what is pinned is what was written."""
    records = []
    for member in members:
        folder = staging / MEMBERS_DIR / member.run_name
        copy = load_bundle(folder, folder.parent)
        records.append(
            {
                "run_name": copy.run_name,
                "manifest_sha256": sha256_file(folder / MANIFEST_FILE),
                "policy_sha256": copy.manifest.files[POLICY_FILE],
            }
        )
    return records
