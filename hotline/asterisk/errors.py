"""The error of the Asterisk configuration writers (generated files and secrets)."""

from __future__ import annotations

__all__ = ["AsteriskConfigError"]


class AsteriskConfigError(ValueError):
    """The settings or the environment cannot produce a valid Asterisk configuration."""
