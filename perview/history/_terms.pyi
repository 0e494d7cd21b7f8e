# The optional C term summary (perview/history/_terms.c); perview/history/terms.py is its only user.

def summarize(
    data: bytes, hash: int, wide: int, density: int, smallest: int, largest: int
) -> bytes: ...
