"""Alerts: rules evaluated on the server as blocks enter the ring (and as metric samples are
published), and the channels that tell someone: `rules.py` (the state of one rule), `scan.py`
(a rule's RE2 over whole blocks), `template.py` (a webhook's body), `channels.py` (commands and
webhooks), `engine.py` (the consumers, the clock and what is kept across restarts)."""
