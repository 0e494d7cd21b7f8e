"""Which sample of a Prometheus exporter a scrape metric charts: `name` or
`name{label="value",...}`. The config checks a selector and the collector applies it with the
same `parse`, so a selector `perview check` accepts never fails at run time.

A selector is written exactly as a sample's name and labels are in the exposition format, so the
reference parser (prometheus_client's) reads it: its escapes and its errors are the format's
own. Only `=` matchers exist there; `!=` and `=~` are refused rather than misread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

FORM = 'a metric name, or a name with labels: name{label="value",...} (only = matchers)'


@dataclass(frozen=True, slots=True)
class Selector:
    metric: str
    labels: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        matchers = ",".join(f'{k}="{_escape(v)}"' for k, v in self.labels.items())
        return self.metric + (f"{{{matchers}}}" if matchers else "")

    def select(self, text: str) -> float:
        """The value of the first sample of an exposition `text` that this selects; raises
        ValueError when none does (or the text is not an exposition)."""
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == self.metric and all(
                    sample.labels.get(k) == v for k, v in self.labels.items()
                ):
                    return float(sample.value)
        raise ValueError(f"no sample matches {self}")


def parse(text: str) -> Selector:
    """The selector written as `text`; raises ValueError saying what is expected."""
    # The parser reads lines, and skips comments: a selector is one sample line without a value.
    if "\n" in text or "\r" in text or text.lstrip().startswith("#"):
        raise ValueError(f"not a selector: expected {FORM}")
    try:
        families = list(text_string_to_metric_families(text + " 0\n"))
    except ValueError as exc:
        reason = str(exc)
        detail = f" ({reason})" if reason.startswith("Invalid labels") else ""
        raise ValueError(f"not a selector{detail}: expected {FORM}") from exc
    samples = [sample for family in families for sample in family.samples]
    # `name 5` parses too (value 5, timestamp 0): a selector has no value of its own.
    if len(samples) != 1 or samples[0].value != 0 or samples[0].timestamp is not None:
        raise ValueError(f"not a selector: expected {FORM}")
    return Selector(samples[0].name, dict(samples[0].labels))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
