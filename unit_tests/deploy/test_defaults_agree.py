"""Each default lives in one place, ``Settings``: the values Compose, Kubernetes and the README's
settings table show for a ``SPY_*``/``ALPACA_*`` variable are its defaults, or a deliberate
deployment override listed below with its reason."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from finrl.applications.spy_rl_trading.settings import (
    ALPACA_PAPER_URL,
    DEFAULT_SECRETS_DIR,
    Settings,
    env_name,
)
from unit_tests.deploy.conftest import K8S_DIR, REPO_ROOT, load_yaml_documents

pytestmark = pytest.mark.unit

FIELD_OF = {env_name(field): field for field in Settings.model_fields}
DEFAULTS: dict[str, Any] = {name: Settings.model_fields[field].default for name, field in FIELD_OF.items()}
# read by load_settings before the model exists: where the .env file and the secret files are
LOADER_DEFAULTS = {"SPY_ENV_FILE": Settings.model_config["env_file"], "SPY_SECRETS_DIR": DEFAULT_SECRETS_DIR}
README = REPO_ROOT / "README.md"
# Compose's own variables, not settings: the files behind the Docker secrets the settings read
COMPOSE_ONLY = {
    "ALPACA_API_KEY_FILE": "the file mounted as the alpaca_api_key secret",
    "ALPACA_API_SECRET_FILE": "the file mounted as the alpaca_api_secret secret",
}

ARTIFACT_VARIABLES = ("SPY_TRAINED_MODELS_DIR", "SPY_TENSORBOARD_LOG_DIR", "SPY_DATASETS_DIR", "SPY_RESULTS_DIR",
                      "SPY_LOGS_DIR")  # fmt: skip
SWEEP_RUNS = ("lr-1e-4", "lr-3e-4", "lr-1e-3")  # docker-compose.parallel.yml's training services
SWEPT = ("SPY_TRAINED_MODELS_DIR", "SPY_TENSORBOARD_LOG_DIR")  # each sweep run writes its own subfolder


def container_dirs(name: str) -> frozenset[str]:
    root = f"/app/{DEFAULTS[name]}"
    return frozenset({root, *(f"{root}/{run}" for run in SWEEP_RUNS if name in SWEPT)})


# Deployed values that differ from the default on purpose: variable -> (values, reason).
OVERRIDES: dict[str, tuple[frozenset[str], str]] = {
    "SPY_DATA_SOURCE": (
        frozenset({"yahoo"}),
        "containers train and trade on real SPY bars; the offline sample is for development",
    ),
    "SPY_LOG_JSON": (
        frozenset({"true"}),
        "containers write JSON lines for log collectors; a terminal gets console lines",
    ),
    "SPY_BROKER": (
        frozenset({"alpaca"}),
        "the paper-trading service trades Alpaca's paper account; simulated is for local runs",
    ),
    "SPY_DEVICE": (
        frozenset({"cuda"}),
        "docker-compose.gpu.yml and k8s/components/gpu-train train on the GPU, or end in one line without one",
    ),
    "SPY_LEARNING_RATE": (
        frozenset({"0.0001", "0.001"}),
        "docker-compose.parallel.yml sweeps the learning rate around the default",
    ),
    "SPY_TUNE_STORAGE": (
        frozenset(
            {
                "postgresql+psycopg://finrl@postgres:5432/optuna",  # docker-compose.tune.yml
                "postgresql+psycopg://finrl@finrl-tune-postgres:5432/optuna",  # k8s/tune
                "postgresql+psycopg://finrl@db.example.com:5432/optuna",  # k8s/tune/external-db (to edit)
            }
        ),
        "deployed workers share one PostgreSQL study; SQLite is for one machine",
    ),
    **{
        name: (container_dirs(name), "containers keep artifacts on volumes under /app (a subfolder per sweep run)")
        for name in ARTIFACT_VARIABLES
    },
}

# Defaults the README states in words rather than as the value: words -> (value, reason).
README_WORDS: dict[str, tuple[Any, str]] = {
    "generated": (None, "SPY_RUN_NAME: made from the symbol, source, seed and time when not set"),
    "Alpaca's paper endpoint": (ALPACA_PAPER_URL, "ALPACA_BASE_URL: the URL is too long for the column"),
}

SUBSTITUTION = re.compile(r"\$\{((?:SPY|ALPACA)_[A-Z0-9_]+):?-([^}]*)\}")


def agrees(text: str, default: Any) -> bool:
    """Whether ``text`` (a YAML or Markdown value) says the same as the field default ``default``."""
    if default is None:
        return text in ("", "none")
    if isinstance(default, bool):
        return text.lower() == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(text) == float(default)
        except ValueError:
            return False
    return text == str(default)


def default_of(name: str) -> Any:
    if name in LOADER_DEFAULTS:
        return LOADER_DEFAULTS[name]
    assert name in DEFAULTS, f"{name} is not a setting (a typo is ignored silently: extra='ignore')"
    return DEFAULTS[name]


def scalar(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------------------- what the files say


def compose_values() -> list[tuple[str, str, str]]:
    """(where, variable, value) for every SPY_*/ALPACA_* value the Compose files set or default."""
    found = []
    for path in sorted(REPO_ROOT.glob("docker-compose*.yml")):
        text = path.read_text(encoding="utf-8")
        for name, default in SUBSTITUTION.findall(text):  # ${SPY_X:-default}, wherever it appears
            if name not in COMPOSE_ONLY:
                found.append((path.name, name, default))
        found += environment_entries(yaml.safe_load(text), path.name)
    return found


def environment_entries(node: Any, where: str) -> list[tuple[str, str, str]]:
    """Literal values of ``environment:`` mappings (``${...}`` ones are read from the text)."""
    entries = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "environment":
                if isinstance(value, list):  # the KEY=VALUE form
                    value = dict(item.partition("=")[::2] if "=" in item else (item, None) for item in value)
                for name, setting in value.items():
                    if str(name).startswith(("SPY_", "ALPACA_")) and setting is not None:
                        text = scalar(setting)
                        match = SUBSTITUTION.fullmatch(text)
                        if match:
                            assert match.group(1) == name, f"{where}: {name} takes ${{{match.group(1)}}}"
                        else:
                            entries.append((f"{where} environment", str(name), text))
            else:
                entries += environment_entries(value, f"{where} {key}" if key != "services" else where)
    return entries


def k8s_values() -> list[tuple[str, str, str]]:
    """(where, variable, value) from ConfigMaps and container ``env`` entries."""
    found = []
    for path in sorted(K8S_DIR.rglob("*.yaml")):
        for document in load_yaml_documents(path):
            where = f"{path.relative_to(REPO_ROOT)} {document.get('kind')}"
            if document.get("kind") == "ConfigMap":
                found += [(where, k, scalar(v)) for k, v in (document.get("data") or {}).items()]
            found += [(where, name, value) for name, value in k8s_env(document)]
    return [entry for entry in found if entry[1].startswith(("SPY_", "ALPACA_"))]


def k8s_env(node: Any) -> list[tuple[str, str]]:
    entries = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                entries += [(e["name"], scalar(e["value"])) for e in value if isinstance(e, dict) and "value" in e]
            else:
                entries += k8s_env(value)
    elif isinstance(node, list):
        for item in node:
            entries += k8s_env(item)
    return entries


def readme_rows() -> list[tuple[str, str]]:
    """(variable, default text) from the README's settings table; one row may list several of each."""
    section = README.read_text(encoding="utf-8").split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    fields = list(FIELD_OF)
    pairs = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names_cell, default_cell = (cell.strip() for cell in line.strip("|").split("|")[:2])
        names = re.findall(r"`((?:SPY|ALPACA)_[A-Z0-9_]+)`", names_cell)
        if "..." in names_cell:  # `SPY_A` ... `SPY_B`: every setting from A to B
            first, last = names
            names = fields[fields.index(first) : fields.index(last) + 1]
        values = [v.strip().strip("`") for v in default_cell.split(", ")] if default_cell else [""] * len(names)
        assert len(values) == len(names), f"README row lists {len(names)} variables but {len(values)} defaults: {line}"
        pairs += zip(names, values, strict=True)
    return pairs


# ---------------------------------------------------------------------------- the checks


def disagreements(values: list[tuple[str, str, str]]) -> tuple[list[str], set[tuple[str, str]]]:
    """Values that are neither the default nor a listed override, and the overrides that were used."""
    wrong, used = [], set()
    for where, name, value in values:
        if agrees(value, default_of(name)):
            continue
        allowed, _reason = OVERRIDES.get(name, (frozenset(), ""))
        if value in allowed:
            used.add((name, value))
        else:
            wrong.append(f"{where}: {name}={value!r}, but the setting's default is {default_of(name)!r}")
    return wrong, used


def test_compose_and_kubernetes_agree_with_settings() -> None:
    values = compose_values() + k8s_values()
    assert len(values) > 20, "the parsers found too little: the files changed shape"
    wrong, used = disagreements(values)
    assert wrong == [], "\n".join(wrong)
    unused = {(name, value) for name, (allowed, _) in OVERRIDES.items() for value in allowed} - used
    assert not unused, f"overrides listed but deployed nowhere any more (remove them): {sorted(unused)}"


def test_readme_settings_table_agrees_with_settings() -> None:
    rows = readme_rows()
    wrong = []
    for name, text in rows:
        default = default_of(name)
        if text in README_WORDS:
            if README_WORDS[text][0] != default:
                wrong.append(f"README: {name} default {text!r} means {README_WORDS[text][0]!r}, not {default!r}")
        elif not agrees(text, default):
            wrong.append(f"README: {name} default {text!r}, but the setting's default is {default!r}")
    assert wrong == [], "\n".join(wrong)


def test_readme_settings_table_documents_every_setting() -> None:
    documented = {name for name, _ in readme_rows()}
    assert set(FIELD_OF) - documented == set(), "settings missing from the README's table"


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [("200000", 200_000, True), ("0.0003", 3e-4, True), ("true", False, False), ("", None, True),
     ("none", None, True), ("64,64", "64,64", True), ("trained_models", Path("trained_models"), True),
     ("yahoo", "sample", False), ("1.0", 1, True), ("x", 1.0, False)],
)  # fmt: skip
def test_values_compare_by_type(text: str, default: Any, expected: bool) -> None:
    assert agrees(text, default) is expected


def test_the_default_agent_is_the_one_research_chose_on_validation() -> None:
    """The default action space, reward and regime features are docs/results.md's validation choice."""
    chosen = re.search(r"Chosen by validation: \*\*([\w-]+)\*\*", (REPO_ROOT / "docs" / "results.md").read_text())
    assert chosen, "docs/results.md names no configuration chosen by validation"
    default = f"{DEFAULTS['SPY_ACTION_SPACE']}-{DEFAULTS['SPY_REWARD']}"
    assert default + ("-regime" if DEFAULTS["SPY_REGIME_FEATURES"] else "") == chosen.group(1)
