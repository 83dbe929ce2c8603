"""Invite codes a person can read aloud and type back on a keypad without being refused.

New codes use Crockford's base32 alphabet (digits and upper-case letters without I, L, O and U),
so there is nothing to confuse and nothing case-sensitive: a code typed in lower case, with
spaces or dashes, or with O for 0 and I/L for 1, is the same code. Codes made before this
(mixed-case random tokens) still work when typed exactly as they were given.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 12  # 60 random bits: guessing one of even thousands of live codes stays hopeless
GROUP = 4
_LOOKALIKES = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_code() -> str:
    """A fresh code as stored and put in links: ``LENGTH`` characters of ``ALPHABET``."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalised(typed: str) -> str:
    """What a person typed, as a stored new-style code would read (case, spaces, dashes and
    look-alike letters forgiven)."""
    compact = "".join(ch for ch in typed if not ch.isspace() and ch != "-")
    return compact.upper().translate(_LOOKALIKES)


def candidates(typed: str) -> list[str]:
    """The stored codes ``typed`` may mean: exactly as typed (an old-style code), or normalised."""
    exact = typed.strip()
    return list(dict.fromkeys([exact, normalised(exact)]))


def shown(code: str) -> str:
    """A new-style code in groups for reading ("7KQ2-M9XD-4HTB"); an old-style one unchanged."""
    if len(code) != LENGTH or any(ch not in ALPHABET for ch in code):
        return code
    return "-".join(code[i : i + GROUP] for i in range(0, LENGTH, GROUP))
