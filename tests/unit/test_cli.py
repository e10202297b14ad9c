"""The command line answers without any server."""

from __future__ import annotations

import pytest

from timeout_budget import __main__ as cli
from timeout_budget import __version__

pytestmark = pytest.mark.unit


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2
