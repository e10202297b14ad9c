"""The operator's own configuration error: a setting (``TBO_*``) is missing or malformed.
Raised by every settings reader (``settings``, ``observe.settings``, ``report.metrics``);
the message names the variable and what it must be."""

from __future__ import annotations


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""
