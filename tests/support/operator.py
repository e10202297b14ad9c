"""Run the real operator process against the sandbox: the tests use the very same runner
as the demo (``sandbox.operator_process``), so what they check is what the demo shows."""

from __future__ import annotations

from sandbox.operator_process import OperatorProcess

__all__ = ["OperatorProcess"]
