"""Message templates: Jinja2's sandbox, so a template can format data but never reach outside it.

A template file is an optional `Subject: ...` line, a blank line, then the body.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined
from jinja2 import nodes as jinja_nodes
from jinja2.sandbox import SandboxedEnvironment

# Chainable: a missing value renders empty instead of failing a send at run time;
# `lifecycle lint` is where an unknown name in a template is reported.
_ENV = SandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)


@lru_cache(maxsize=1024)
def _compile(source: str):
    return _ENV.from_string(source)


def split_subject(source: str) -> tuple[str, str]:
    """(subject template, body template) of a template file's text."""
    first, _, rest = source.partition("\n")
    if first.lower().startswith("subject:"):
        return first[len("subject:"):].strip(), rest.lstrip("\n")
    return "", source


def render(source: str, context: dict[str, Any]) -> tuple[str, str]:
    """Render a template file's text into (subject, body)."""
    subject, body = split_subject(source)
    return _compile(subject).render(context).strip(), _compile(body).render(context).strip()


def attribute_name(node: jinja_nodes.Node) -> str | None:
    """The name read by `x.name` or `x['name']` in a template's syntax tree, else None."""
    if isinstance(node, jinja_nodes.Getattr):
        return node.attr
    if isinstance(node, jinja_nodes.Getitem) and isinstance(node.arg, jinja_nodes.Const) \
            and isinstance(node.arg.value, str):
        return node.arg.value
    return None
