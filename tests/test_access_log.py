"""The access log `-v` turns on: what is taken out of a logged request (the token)."""

from __future__ import annotations

import pytest

from perview.web.access_log import redact


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/?token=s3cret", "/?token=…"),
        ("/api/sources?source=a&token=s3cret&since=4", "/api/sources?source=a&token=…&since=4"),
        ("/?%74oken=s3cret", "/?token=…"),  # the server decodes the name, so must we
        ("/?tok%65n=s3cret&token=other", "/?token=…&token=…"),
        ("/?token", "/?token=…"),
        ("/?a=1;token=s3cret", "/?a=1;token=…"),
        ("http://host:9/?token=s3cret#x", "http://host:9/?token=…#x"),
        ("/#token=s3cret", "/#token=…"),
        ("/?tokens=kept&x=token%3Dkept", "/?tokens=kept&x=token%3Dkept"),
        ("/api/sources", "/api/sources"),
        ("-", "-"),
    ],
)
def test_the_token_is_taken_out_of_what_is_logged(target: str, logged: str) -> None:
    assert redact(target) == logged
