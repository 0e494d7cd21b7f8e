# The optional C scanner (perview/_levels.c); perview/classify.py is its only user.

PARTS: tuple[str, ...]
UPPER: int
LOWER: int
PG: int

def configure(
    codes: dict[bytes, int],
    kinds: dict[bytes, int],
    structure: list[bytes],
    suffixes: list[bytes],
    json_keys: list[bytes],
    max_fields: int,
) -> None: ...
def scan(block: bytes, parts: bytes, lines: int) -> bytes: ...
