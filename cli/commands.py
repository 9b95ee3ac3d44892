"""The list of subcommands; each lives in its own module under cli/."""

from __future__ import annotations

import click

ALL: list[click.Command] = []
