"""seed_everything: reproducible Python, NumPy and torch draws; PYTHONHASHSEED exported."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from finrl.seeding import seed_everything

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _restore_global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)  # undo restores the original value
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    random.setstate(py_state)
    np.random.set_state(np_state)
    torch.set_rng_state(torch_state)


def draws(seed: int) -> tuple[list[float], list[float], list[float]]:
    seed_everything(seed)
    return (
        [random.random() for _ in range(5)],
        np.random.rand(5).tolist(),
        torch.rand(5).tolist(),
    )


@pytest.mark.unit
def test_same_seed_same_draws() -> None:
    first = draws(123)
    random.random(), np.random.rand(), torch.rand(1)  # disturb the generators in between
    second = draws(123)
    assert first == second


@pytest.mark.unit
def test_different_seeds_differ() -> None:
    a_py, a_np, a_torch = draws(1)
    b_py, b_np, b_torch = draws(2)
    assert a_py != b_py
    assert a_np != b_np
    assert a_torch != b_torch


@pytest.mark.unit
def test_pythonhashseed_exported() -> None:
    seed_everything(7)
    assert os.environ["PYTHONHASHSEED"] == "7"


@pytest.mark.integration  # starts Python processes
def test_pythonhashseed_fixes_child_hashes() -> None:
    seed_everything(11)
    code = "print(hash('finrl-spy'))"
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(outputs) == 1


@pytest.mark.unit
def test_torch_deterministic_flag() -> None:
    torch.use_deterministic_algorithms(False)
    seed_everything(3, torch_deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    seed_everything(3)
    assert torch.are_deterministic_algorithms_enabled()
