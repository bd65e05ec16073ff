"""``--help`` of every command: each option with its default, no reStructuredText markup.

The commands take their descriptions from module docstrings, which quote names as
``like this`` for Sphinx; in a terminal that is noise, so the double backticks go. An
option's default is added as ``(default: X)`` unless its help already says it or it has
none worth showing (``None``, ``False``, an empty list).
"""

from __future__ import annotations

import argparse

RST_LITERAL = "``"
NO_DEFAULTS = (None, False, argparse.SUPPRESS)


def plain(text: str) -> str:
    """Text without reStructuredText double backticks."""
    return text.replace(RST_LITERAL, "")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept as written (examples stay aligned); defaults shown; RST stripped."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(plain(text), width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = plain(action.help or "")
        default = action.default
        shown = not (default in NO_DEFAULTS or default == [] or "default" in text.lower())
        if action.option_strings and shown:
            text += " (default: %(default)s)"
        return text
