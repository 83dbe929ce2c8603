"""Vietnamese phone numbers in any common form, normalised to one (E.164, ``+84...``)."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s.\-()/]")
# Mobile numbers: 9 significant digits starting 3, 5, 7, 8 or 9; landlines: 10 starting with 2.
_MOBILE = re.compile(r"^[35789]\d{8}$")
_LANDLINE = re.compile(r"^2\d{9}$")


class PhoneError(ValueError):
    """Why a number was refused: ``reason`` is 'foreign' or 'malformed'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalize_phone(raw: str) -> str:
    """Any common form (0912 345 678, 0912.345.678, +84 912 345 678) → ``+84912345678``."""
    digits = _SEPARATORS.sub("", raw.strip())
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if digits.startswith("+"):
        if not digits.startswith("+84"):
            raise PhoneError("foreign")
        national = digits[3:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        national = digits[2:]
    elif digits.startswith("0"):
        national = digits[1:]
    else:
        national = digits
    if not national.isdigit() or not (_MOBILE.match(national) or _LANDLINE.match(national)):
        raise PhoneError("malformed")
    return "+84" + national


def display_phone(phone: str) -> str:
    """``+84912345678`` → ``0912 345 678``, as members write it."""
    national = "0" + phone.removeprefix("+84")
    return f"{national[:4]} {national[4:7]} {national[7:]}".strip()
