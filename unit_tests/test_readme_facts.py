"""What the README (and docs/) promise, checked by doing it: every ``spy-rl`` command they show exists
(``<command> --help`` exits 0), the cheap commands do what their comments say, and a real but tiny
``spy-rl pipeline --source sample`` (the job of ``make run``) leaves every file the block of
"What `make run` does" names, at the place it names it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from finrl.applications.spy_rl_trading.cli import app
from unit_tests.conftest import REPO_ROOT, isolated_env

README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not README.is_file(), reason="no README here (the test image)"),
]

# the folders of the block, as `make run` leaves them under the working folder, and the flag that moves each
FOLDER_FLAGS = {
    "datasets": "--datasets-dir",
    "trained_models": "--models-dir",
    "tensorboard_logs": "--tensorboard-dir",
    "results": "--results-dir",
}


# ------------------------------------------------------------------ reading the docs


def section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section (up to the next ``## ``)."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def code_texts(text: str) -> Iterator[str]:
    """Fenced blocks and inline code spans: where the docs show commands (prose may say 'spy-rl tune runs ...')."""
    yield from fenced_blocks(text)
    without_blocks = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    yield from re.findall(r"`([^`]{1,300})`", without_blocks)


def shown_commands(text: str) -> set[tuple[str, ...]]:
    """Each ``spy-rl word word ...`` shown, as its words up to the first option, placeholder or other token."""
    found = set()
    for code in code_texts(text):
        for line in code.replace("\\\n", " ").splitlines():
            for match in re.finditer(r"(?<![\w-])spy-rl((?: +[a-z][a-z0-9-]*)*)", line):
                found.add(tuple(match.group(1).split()))
    return found


def command_path(words: tuple[str, ...]) -> tuple[list[str], str | None]:
    """The command the words name (the words that are subcommands) and what is wrong, if anything.

    A word after a group must be one of its commands; after a command it is an argument (``runs convert r1``).
    """
    command: Any = typer.main.get_command(app)  # typer vendors click: a group is what has subcommands
    path: list[str] = []
    for word in words:
        subcommands = getattr(command, "commands", None)
        if not isinstance(subcommands, dict):
            break
        if word not in subcommands:
            return path, f"spy-rl {' '.join([*path, word])}: no command {word!r} in spy-rl {' '.join(path)}".strip()
        command = subcommands[word]
        path.append(word)
    return path, None


def make_run_block() -> list[str]:
    (block,) = fenced_blocks(section(README.read_text(encoding="utf-8"), "What `make run` does"))
    return [line for line in block.splitlines() if line.strip()]


# ------------------------------------------------------------------ running the commands

runner = CliRunner()


def invoke(root: Path, *args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=isolated_env(root), catch_exceptions=False)


def spy_rl_process(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script as a shell runs it."""
    script = Path(sys.executable).parent / "spy-rl"
    executable = str(script) if script.is_file() else shutil.which("spy-rl")
    assert executable, "the spy-rl console script is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPY_", "ALPACA_"))}
    return subprocess.run(
        [executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make run``'s ``spy-rl pipeline --source sample``, tiny, with every folder in a temporary root."""
    root = tmp_path_factory.mktemp("make-run")
    folders = [arg for name, flag in FOLDER_FLAGS.items() for arg in (flag, root / name)]
    result = invoke(root, "pipeline", "--source", "sample", "--timesteps", "2048", "--eval-freq", "0", *folders)
    assert result.exit_code == 0, result.output + result.stderr
    return root


# ------------------------------------------------------------------ the tests


def test_every_command_the_docs_show_exists() -> None:
    shown: dict[tuple[str, ...], str] = {}
    for page in [README, *DOCS]:
        for words in shown_commands(page.read_text(encoding="utf-8")):
            shown.setdefault(words, page.name)
    assert ("pipeline",) in shown and ("paper",) in shown, "the README's command-line block was not found"
    problems = []
    for words, page in sorted(shown.items()):
        path, problem = command_path(words)
        if problem:
            problems.append(f"{page}: {problem}")
            continue
        result = runner.invoke(app, [*path, "--help"])
        if result.exit_code != 0:
            problems.append(f"{page}: spy-rl {' '.join(path)} --help exits {result.exit_code}")
    assert not problems, "\n".join(problems)


def test_version_and_help_as_a_shell_runs_them(tmp_path: Path) -> None:
    version = spy_rl_process("version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"finrl {metadata.version('finrl')}"
    helped = spy_rl_process("--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    for command in ("train", "pipeline", "backtest", "walkforward", "tune", "paper", "health", "data", "runs"):
        assert re.search(rf"^\s+{command}\s", helped.stdout, flags=re.MULTILINE), f"--help lists no {command}"
    assert list(tmp_path.iterdir()) == []  # neither writes anything


def test_data_fetch_caches_the_files_the_readme_names_and_validate_exits_as_it_says(tmp_path: Path) -> None:
    result = invoke(tmp_path, "data", "fetch", "--source", "sample", "--datasets-dir", tmp_path / "datasets")
    assert result.exit_code == 0, result.output + result.stderr
    (cache,) = (tmp_path / "datasets").glob("sample-SPY-*")
    # Data: "cached under datasets/<source>-<symbol>-.../ (bars.csv, metadata.json ..., then features.csv and
    # features.json)"
    assert {"bars.csv", "metadata.json", "features.csv", "features.json"} <= {p.name for p in cache.iterdir()}

    good = invoke(tmp_path, "data", "validate", "--csv", cache / "bars.csv")
    assert good.exit_code == 0, good.output + good.stderr  # "exit 0 on good data"
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "date,open,high,low,close,volume\n2020-01-02,1,1,1,1,0\n2020-01-03,1,1,1,1,-5\n2020-01-06,1,0.5,1,1,10\n"
    )
    failed = invoke(tmp_path, "data", "validate", "--csv", bad)
    assert failed.exit_code == 1  # "1 with one line per problem"
    assert len(failed.stderr.strip().splitlines()) >= 1
    assert all(line.startswith("error:") for line in failed.stderr.strip().splitlines())


@pytest.mark.slow
def test_make_run_leaves_every_file_the_readme_lists(make_run: Path) -> None:
    latest = make_run / "trained_models" / "latest"
    assert latest.is_symlink(), "trained_models/latest is not a link"
    run = str(latest.readlink())
    missing = []
    for line in make_run_block():
        if " -> " in line:  # trained_models/latest -> <run>
            link, target = (part.strip() for part in line.split(" -> "))
            if not (make_run / link).is_symlink() or str((make_run / link).readlink()) != target.replace("<run>", run):
                missing.append(f"{line.strip()!r}: {link} is not a link to {target}")
            continue
        folder, listed = [*re.split(r"\s{2,}", line.strip(), maxsplit=1), ""][:2]
        assert folder.split("/")[0] in FOLDER_FLAGS, f"a folder the test does not know: {folder}"
        pattern = re.sub(r"<[^>]+>", "*", folder.replace("<run>", run)).replace("...", "*").rstrip("/")
        matches = [p for p in make_run.glob(pattern) if p.is_dir()]
        if len(matches) != 1:
            missing.append(f"{line.strip()!r}: {len(matches)} folders match {pattern}")
            continue
        names = [name.strip() for name in listed.split(",")]
        files = [name for name in names if re.fullmatch(r"[\w.-]+\.\w+|[\w.-]+/", name)]
        if not files:  # a description, not file names (tensorboard_logs/<run>_1/): the folder holds something
            if not any(matches[0].iterdir()):
                missing.append(f"{line.strip()!r}: {matches[0]} is empty")
            continue
        for name in files:
            path = matches[0] / name.rstrip("/")
            if not (path.is_dir() if name.endswith("/") else path.is_file()):
                missing.append(f"{line.strip()!r}: no {name} in {matches[0].relative_to(make_run)}")
    assert not missing, "\n".join(missing)


@pytest.mark.slow
def test_paper_once_on_the_sample_then_health(make_run: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    common = ("--models-dir", make_run / "trained_models", "--datasets-dir", make_run / "datasets", "--logs-dir", logs)
    once = invoke(tmp_path, "paper", "--once", "--live-source", "sample", *common)
    assert once.exit_code == 0, once.output + once.stderr  # "one decision replaying the sample (simulated broker)"
    # Paper trading: the simulated account, the journal, the heartbeat, the state and the lock, in the state folder
    for name in ("simulated_account.json", "journal.jsonl", "health.json", "trader_state.json", "paper.lock"):
        assert (logs / name).is_file(), f"no logs/{name}"
    healthy = invoke(tmp_path, "health", "--logs-dir", logs)
    assert healthy.exit_code == 0, healthy.output + healthy.stderr
    unhealthy = invoke(tmp_path, "health", "--logs-dir", tmp_path / "elsewhere")
    assert unhealthy.exit_code == 1


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    without_blocks = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    headings = re.findall(r"^#{1,6} +(.+?) *$", without_blocks, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_docs_links_lead_somewhere() -> None:
    broken = []
    for page in [README, *DOCS]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and anchor not in heading_anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
