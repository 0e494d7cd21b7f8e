"""A webhook's body template: `{field}` replaced by that field of the alert, JSON-escaped.

Nothing is evaluated: only the names in FIELDS are replaced, by text (the escaped contents of a
JSON string, without its quotes), so a matched line can neither end the string it is put in nor
add a key. Every other brace is the template's own (a JSON body is full of them)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

# The fields of an alert, as a webhook's JSON, a template, and a command's environment
# (PERVIEW_ALERT, PERVIEW_STATE, ...) name them.
FIELDS = (
    "alert",  # the rule's name
    "state",  # "firing" or "resolved"
    "summary",  # one sentence a person reads
    "source",  # the source (or metric series) it is about
    "part",  # the part (host, or a glob's file) of a source of several its lines come from
    "host",  # the same as part, by its name before `part` (the README promised it)
    "lines",  # the matched lines, one per line
    "count",  # how many times the rule's condition was met for this notification
    "suppressed",  # notifications held back by the cooldown since the last one sent
    "value",  # a metric's value
    "time",  # when, as ISO 8601 (UTC)
)
PLACE = re.compile(r"\{([A-Za-z_]+)\}")
ENV = re.compile(
    r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}"
)  # `${VAR}` in a webhook's header, from the environment


def unknown_fields(template: str) -> list[str]:
    """The `{names}` in `template` that are not fields (a typo, or a JSON body's own braces
    around a bare word, which would be replaced if it were a field)."""
    return [name for name in PLACE.findall(template) if name not in FIELDS]


def render(template: str, fields: Mapping[str, object]) -> str:
    """`template` with each `{field}` replaced by the field's text, escaped for a JSON string."""

    def value(match: re.Match[str]) -> str:
        name = match[1]
        if name not in FIELDS:
            return match[0]
        item = fields.get(name)
        text = "" if item is None else str(item)
        return json.dumps(text)[
            1:-1
        ]  # escaped as inside a JSON string, quotes left to the template

    return PLACE.sub(value, template)
