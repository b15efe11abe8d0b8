"""One place that seeds every random number generator an entry point touches."""

from __future__ import annotations

import os
import random
import sys


def seed_everything(seed: int, *, torch_deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch where it is already imported.

    Only training imports torch (and imports it before seeding); commands that never train
    do not pay torch's start-up to seed a generator they never use.

    PYTHONHASHSEED only affects interpreters started afterwards (worker processes), so it is
    exported for them; the current interpreter's hash seed cannot change any more.
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)

    import numpy as np

    np.random.seed(seed)

    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
        if torch_deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
