"""The paper trader's --once exit codes as the README's table and `spy-rl paper --help` list them.

Here, with the other checks of the docs against the code: the test image holds no README.
"""

from __future__ import annotations

import re

import pytest

from finrl.applications.spy_rl_trading.commands.paper import PAPER_HELP
from finrl.trade.exit_codes import CycleExit
from unit_tests.deploy.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def test_help_and_readme_list_every_code() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Paper trading") :]
    section = section[: section.index("\n## ", 1)]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|", section, flags=re.MULTILINE))
    assert {int(code) for code in rows} == {int(code) for code in CycleExit}
    for code in CycleExit:
        assert re.search(rf"^\s*{code.value}  {re.escape(code.meaning)}$", PAPER_HELP, flags=re.MULTILINE)
        assert len(f"   {code.value}  {code.meaning}") <= 80
