"""API keys: how they are made, stored and looked up.

A key is ``ml_`` plus 32 random bytes (URL-safe base64). Only its SHA-256 digest is ever
stored (settings or a keys file), so a leaked keys file or environment grants nothing. A
plain, fast digest is enough here because the secrets are random 256-bit values that nobody
can guess: salting and stretching (scrypt, argon2) protect low-entropy passwords, and would
cost a full key-derivation per request, per configured key. Digests also let a request's key
be found in one dictionary lookup instead of a comparison with every stored entry.

One entry per line, in the keys file (``METERLINE_API_KEYS_FILE``) and in
``METERLINE_API_KEYS`` (where commas separate entries too)::

    sha256:<64 hex digits> admin
    sha256:<64 hex digits> customer:<customer id>    # anything after the scope is ignored

Blank lines and lines starting with ``#`` are comments.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ADMIN",
    "KEY_PREFIX",
    "ApiKey",
    "KeyFileError",
    "KeyRing",
    "digest",
    "entry_line",
    "new_key",
    "parse_entries",
]

KEY_PREFIX = "ml_"
ADMIN = "admin"
_CUSTOMER = "customer:"
_DIGEST_RE = re.compile(r"sha256:([0-9a-f]{64})")


class KeyFileError(ValueError):
    """A malformed key entry; the message names where, never the digest."""


@dataclass(frozen=True)
class ApiKey:
    """What a presented key may do: everything (admin) or one customer's data."""

    customer: str | None  # None for an admin key
    label: str = ""  # where it was configured, for error messages and logs

    @property
    def is_admin(self) -> bool:
        return self.customer is None

    def may_read(self, customer: str) -> bool:
        return self.customer is None or self.customer == customer


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    """The stored form of ``key``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def entry_line(key: str, customer: str | None) -> str:
    """The keys-file line for ``key``: admin when ``customer`` is None."""
    scope = ADMIN if customer is None else _CUSTOMER + customer
    return f"{digest(key)} {scope}"


def _parse_line(line: str, where: str) -> tuple[str, ApiKey] | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    stored, _, rest = text.partition(" ")
    if not _DIGEST_RE.fullmatch(stored):
        # Never echo the entry: it might be a plain key pasted by mistake.
        raise KeyFileError(f"{where}: expected 'sha256:<64 hex digits> <scope>'")
    scope = rest.strip()
    # "# ..." after the scope is a comment; a customer id may contain spaces but not " #".
    scope = scope.split(" #", 1)[0].strip()
    if scope == ADMIN:
        return stored, ApiKey(None, where)
    if scope.startswith(_CUSTOMER) and scope[len(_CUSTOMER) :].strip():
        return stored, ApiKey(scope[len(_CUSTOMER) :].strip(), where)
    raise KeyFileError(f"{where}: scope must be 'admin' or 'customer:<id>'")


def parse_entries(lines: Iterable[str], source: str) -> dict[str, ApiKey]:
    keys: dict[str, ApiKey] = {}
    for n, line in enumerate(lines, start=1):
        parsed = _parse_line(line, f"{source} entry {n}")
        if parsed is not None:
            stored, key = parsed
            if stored in keys and keys[stored] != ApiKey(key.customer, keys[stored].label):
                raise KeyFileError(f"{key.label}: the same key is configured twice")
            keys.setdefault(stored, key)
    return keys


@dataclass(frozen=True)
class KeyRing:
    """Every configured key, by digest."""

    keys: Mapping[str, ApiKey]

    @classmethod
    def load(cls, inline: str = "", file: Path | None = None) -> KeyRing:
        """From ``METERLINE_API_KEYS`` (``inline``) and ``METERLINE_API_KEYS_FILE``."""
        keys = parse_entries(re.split(r"[,\n]", inline), "METERLINE_API_KEYS") if inline else {}
        if file is not None:
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise KeyFileError(f"cannot read the API keys file {file}: {exc}") from exc
            for stored, key in parse_entries(text.splitlines(), str(file)).items():
                keys.setdefault(stored, key)
        return cls(keys)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def lookup(self, presented: str) -> ApiKey | None:
        return self.keys.get(digest(presented))
