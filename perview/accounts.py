"""Password users: scrypt hashes, signed expiring sessions, a lock-out after failed logins.

A password is stored only as `scrypt$N$r$p$SALT$KEY` (what `perview hash-password` prints; the
cost travels with the hash, so it can be raised later). A session is a value the server signs
and does not store: `user~id~expires~mac`, where the MAC also covers the user's password hash
(or the token, for a token login), so changing a password or the token ends its sessions. The
signing key lives in the data directory, so sessions survive a restart; a logout is kept in a
small list of revoked session ids until they would have expired anyway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from perview.private import FILE_MODE, private_dir

log = logging.getLogger(__name__)

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")

# 2**16 x 8 x 1 is 64 MiB and about a quarter of a second here: slow for a guesser, fine for
# a person logging in. Verification refuses costs above MAX_SCRYPT_MEMORY (a config typo must
# not ask for gigabytes).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**16, 8, 1
MAX_SCRYPT_MEMORY = 256 * 1024 * 1024
CONCURRENT_CHECKS = 2  # password checks running at once: bounds their memory and CPU
# Checks waiting for a slot. A login that finds the queue full is answered 503 at once rather
# than kept waiting: behind a full queue it waits QUEUED_CHECKS / CONCURRENT_CHECKS + 1 checks
# (about 1.3 s at the default cost); without a bound, 150 logins sent at once held a person 16 s.
QUEUED_CHECKS = 8
# Checks waiting or running for one address: one address, however many logins it sends, holds a
# login from elsewhere back by at most one check, and cannot fill the queue for everyone.
CHECKS_PER_ADDRESS = CONCURRENT_CHECKS


@dataclass(frozen=True, slots=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @property
    def memory(self) -> int:
        return 128 * self.n * self.r * self.p

    def __str__(self) -> str:
        return f"scrypt${self.n}${self.r}${self.p}${_b64(self.salt)}${_b64(self.key)}"


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    return str(PasswordHash(n, r, p, salt, _scrypt(password, salt, n, r, p)))


def parse_hash(text: str) -> PasswordHash | str:
    """The hash in `text`, or why it is not one `perview hash-password` could have made."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return "must be a hash made by `perview hash-password` (scrypt$N$r$p$salt$key)"
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        return "is not a well-formed scrypt hash"
    parsed = PasswordHash(n, r, p, salt, key)
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or len(key) < 16:
        return "has impossible scrypt parameters"
    if parsed.memory > MAX_SCRYPT_MEMORY:
        return f"needs {parsed.memory >> 20} MiB to check; at most {MAX_SCRYPT_MEMORY >> 20} MiB"
    return parsed


def verify_password(password: str, stored: str) -> bool:
    parsed = parse_hash(stored)
    if isinstance(parsed, str):
        return False
    key = _scrypt(password, parsed.salt, parsed.n, parsed.r, parsed.p, len(parsed.key))
    return hmac.compare_digest(key, parsed.key)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    memory = 128 * n * r * p
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=memory + (1 << 20), dklen=length
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


class PasswordChecker:
    """Checks passwords off the event loop, a few at a time, with a bounded queue. An unknown
    user costs as much as a known one (a hash of its own is checked), so timing does not tell
    which names exist."""

    def __init__(self) -> None:
        self._slots = asyncio.Semaphore(CONCURRENT_CHECKS)
        self._decoy: str | None = None
        self._pending = 0
        self._per_address: dict[str, int] = {}

    def full(self, address: str) -> bool:
        """Whether a check for `address` must be refused now: the queue is full, or that
        address has its share of it. A caller that is told no starts `check` without an await
        in between, so nothing can take the place it was told of."""
        return (
            self._pending >= CONCURRENT_CHECKS + QUEUED_CHECKS
            or self._per_address.get(address, 0) >= CHECKS_PER_ADDRESS
        )

    async def check(self, password: str, stored: str | None, address: str) -> bool:
        # Counted before the first await: `full` must see this check from now on.
        self._pending += 1
        self._per_address[address] = self._per_address.get(address, 0) + 1
        try:
            await self._slots.acquire()
            job = asyncio.get_running_loop().run_in_executor(None, self._verify, password, stored)
            # The slot belongs to the thread, not to the request: a client that leaves cancels
            # its handler but cannot stop a scrypt under way, which keeps its slot until done.
            job.add_done_callback(lambda _: self._slots.release())
            return await asyncio.shield(job)
        finally:
            self._pending -= 1
            left = self._per_address.pop(address) - 1
            if left:
                self._per_address[address] = left

    def _verify(self, password: str, stored: str | None) -> bool:
        """Runs in a worker thread."""
        if stored is None:
            if self._decoy is None:  # two first checks may both make one: no harm
                self._decoy = hash_password(secrets.token_hex(8))
            verify_password(password, self._decoy)
            return False
        return verify_password(password, stored)


# -- sessions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    user: str  # a configured user's name; TOKEN_USER for a login with the token
    id: str
    expires: float


TOKEN_USER = "-"  # not a valid user name, so a token session can never be mistaken for one
SEP = "~"  # in no user name and no base64url text


class SessionKeys:
    """Signs and checks sessions, and remembers the ones logged out."""

    def __init__(self, directory: Path | None, lifetime: float) -> None:
        self.lifetime = lifetime
        self._revoked_file = directory / "revoked-sessions" if directory else None
        self._key = _load_key(directory / "session.key") if directory else _fresh_key()
        self._revoked: dict[str, float] = self._load_revoked()

    def issue(self, user: str, secret: str) -> str:
        """A session for `user`, bound to `secret` (their password hash, or the token)."""
        body = SEP.join((user, secrets.token_urlsafe(12), str(int(time.time() + self.lifetime))))
        return body + SEP + self._mac(body, secret)

    def check(self, value: str, secret_of: Callable[[str], str | None]) -> Session | None:
        """The session `value` holds, if it is ours, unexpired, not logged out, and its user's
        secret is still the one it was issued for."""
        if not value.isascii():  # ours are; and compare_digest takes only ASCII text
            return None
        body, _, mac = value.rpartition(SEP)
        user, _, rest = body.partition(SEP)
        session_id, _, expires = rest.partition(SEP)
        secret = secret_of(user)
        if secret is None or not expires.isdigit():
            return None
        if not hmac.compare_digest(mac, self._mac(body, secret)):
            return None
        if int(expires) <= time.time() or session_id in self._revoked:
            return None
        return Session(user, session_id, float(expires))

    def revoke(self, session: Session) -> None:
        now = time.time()
        self._revoked = {k: t for k, t in self._revoked.items() if t > now}
        self._revoked[session.id] = session.expires
        if self._revoked_file is None:
            return
        text = "".join(f"{k} {int(t)}\n" for k, t in self._revoked.items())
        try:
            _write_private(self._revoked_file, text.encode())
        except OSError as exc:
            log.warning("cannot keep the logout in %s: %s", self._revoked_file, exc.strerror)

    def _mac(self, body: str, secret: str) -> str:
        bound = hashlib.sha256(secret.encode()).digest()
        return _b64(hmac.digest(self._key, body.encode() + b"\0" + bound, "sha256"))

    def _load_revoked(self) -> dict[str, float]:
        if self._revoked_file is None:
            return {}
        try:
            lines = self._revoked_file.read_text().split("\n")
        except OSError:
            return {}
        now, revoked = time.time(), {}
        for line in lines:
            session_id, _, expires = line.partition(" ")
            if expires.isdigit() and int(expires) > now:
                revoked[session_id] = float(expires)
        return revoked


def _fresh_key() -> bytes:
    return secrets.token_bytes(32)


def _load_key(path: Path) -> bytes:
    """The signing key kept at `path` (made on first use, readable only by us). If it cannot be
    kept, a key for this run: sessions then end when Perview does."""
    with contextlib.suppress(OSError):
        private_dir(path.parent)  # an older Perview made it open to others
    with contextlib.suppress(OSError):
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    key = _fresh_key()
    try:
        _write_private(path, key)
    except OSError as exc:
        log.warning("cannot keep the session key in %s (%s): logins end at exit", path, exc)
    return key


def _write_private(path: Path, data: bytes) -> None:
    private_dir(path.parent)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # a leftover from a crash keeps its old mode through O_CREAT
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    temporary.replace(path)


# -- lock-out ----------------------------------------------------------------------------------


class LoginThrottle:
    """After FREE_FAILURES failed logins for a user name or from an address, each further try
    has to wait twice as long as the one before (1 s, 2 s, 4 s, ... up to MAX_DELAY).

    A try counts as a failure from the moment it is let through (`attempt`), before its password
    is checked: tries sent at once cannot all pass while the first is still being checked.

    A success (`succeeded`) takes back only what that name tried from that address, the
    successful try included: a person's own typos are forgiven, but failures for the name from
    other addresses still count against the name, and the address's failures for other names
    still count against the address. So neither the real user logging in elsewhere nor a guesser
    logging into an account of its own resets the count a guesser is held to; the delay then
    runs from the successful try.

    Memory is bounded: a record is forgotten after FORGET_AFTER quiet seconds, and the oldest go
    first past MAX_RECORDS."""

    FREE_FAILURES = 5
    MAX_DELAY = 900.0
    FORGET_AFTER = 3600.0
    MAX_RECORDS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # (kind, ...) -> (failures, time of the last try); oldest first. Kinds: ("user", name),
        # ("address", address), and ("pair", name, address) for what `succeeded` takes back.
        self._failures: dict[tuple[str, ...], tuple[int, float]] = {}

    def wait(self, name: str, address: str) -> float:
        """Seconds before `name` may try again from `address` (0: now)."""
        now, longest = self._clock(), 0.0
        for key in (("user", name), ("address", address)):
            count, last = self._failures.get(key, (0, now))
            if count >= self.FREE_FAILURES:
                delay = min(2.0 ** (count - self.FREE_FAILURES), self.MAX_DELAY)
                longest = max(longest, last + delay - now)
        return longest

    def attempt(self, name: str, address: str) -> None:
        """Count a try that is about to be checked as a failure, until `succeeded` says not."""
        now = self._clock()
        for key in (("user", name), ("address", address), ("pair", name, address)):
            count, _ = self._failures.pop(key, (0, now))
            self._failures[key] = (count + 1, now)  # re-inserted: the dict stays oldest-first
        while len(self._failures) > self.MAX_RECORDS or self._stale(now):
            del self._failures[next(iter(self._failures))]

    def succeeded(self, name: str, address: str) -> None:
        forgiven, _ = self._failures.pop(("pair", name, address), (0, 0.0))
        for key in (("user", name), ("address", address)):
            count, last = self._failures.get(key, (0, 0.0))
            if count > forgiven:
                self._failures[key] = (count - forgiven, last)  # in place: the order holds
            else:
                self._failures.pop(key, None)

    def _stale(self, now: float) -> bool:
        oldest = next(iter(self._failures.values()), None)
        return oldest is not None and now - oldest[1] > self.FORGET_AFTER
