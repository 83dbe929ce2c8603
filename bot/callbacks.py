"""Typed button data: one small frozen dataclass per action, with its fields typed and a version.

Why: a button's data is a protocol between the message we sent (possibly days ago, still on a
member's screen) and the handler that receives the press. Written as ad-hoc strings
(``f"a:mtc:{id}:ch"`` here, ``args[1] == "ch"`` there) the two halves drift apart silently.
A ``Callback`` subclass is both halves: ``encode()`` makes the data, ``decode()`` reads it back
into typed fields or refuses it, and the router hands the handler the typed value.

Wire format (unchanged for version 1, so buttons already in members' chats keep working):
``a:<action>:<field>:<field>…`` — ints as digits, enums by value, booleans as ``1``/``0``.
Trailing fields typed ``X | None = None`` are optional: left off the data while they are None
(``a:tk:5:view`` and ``a:tk:5:fq:install`` are one action with an optional last field).
A version above 1 is part of the action's key (``a:<action>.<v>:…``), so a press on a button of
an older shape finds no handler and is answered as a stale button instead of being misread.
The data is signed afterwards by ``bot.buttons.ButtonSigner`` (64-byte Telegram limit).
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from typing import Any, ClassVar, Self

SEP = ":"


class BadCallback(ValueError):
    """The pressed data does not fit the action's shape: an old or forged button."""


class Callback:
    """Base of every typed button; subclasses are frozen dataclasses declaring ``action``."""

    action: ClassVar[str]
    version: ClassVar[int] = 1

    @classmethod
    def key(cls) -> str:
        """The router's name for this action and version."""
        return cls.action if cls.version == 1 else f"{cls.action}.{cls.version}"

    def encode(self) -> str:
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        while values and values[-1] is None:  # optional trailing fields are left off
            values.pop()
        if None in values:
            raise ValueError(f"{self.key()}: only trailing fields may be None")
        return SEP.join(["a", self.key(), *(_encode(value) for value in values)])

    @classmethod
    def decode(cls, args: list[str]) -> Self:
        """The typed value of a press's arguments (after ``a:<key>:``), or ``BadCallback``."""
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        required = sum(1 for f in fields if f.default is dataclasses.MISSING)
        if not required <= len(args) <= len(fields):
            raise BadCallback(f"{cls.key()}: {len(args)} fields, expected {len(fields)}")
        hints = typing.get_type_hints(cls)
        values = {
            f.name: _decode(_required(hints[f.name]), raw)
            for f, raw in zip(fields, args, strict=False)
        }
        return cls(**values)


def _required(kind: Any) -> Any:
    """``X`` for an optional field typed ``X | None``; any other type as it is."""
    members = [k for k in typing.get_args(kind) if k is not type(None)]
    if len(members) == 1 and type(None) in typing.get_args(kind):
        return members[0]
    return kind


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, enum.Enum):
        return str(value.value)
    text = str(value)
    if SEP in text or "~" in text:
        raise ValueError(f"button field may not contain ':' or '~': {text!r}")
    return text


def _decode(kind: Any, raw: str) -> Any:
    try:
        if kind is bool:
            if raw not in ("0", "1"):
                raise BadCallback(raw)
            return raw == "1"
        if kind is int:
            if not raw.lstrip("-").isdigit():
                raise BadCallback(raw)
            return int(raw)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return kind(raw)
        if kind is str:
            return raw
    except ValueError as exc:
        raise BadCallback(raw) from exc
    raise TypeError(f"unsupported button field type: {kind!r}")


@dataclasses.dataclass(frozen=True)
class OpenCommand(Callback):
    """A button that runs a command as if it were typed: ``a:cmd:<name>`` (read by the router
    itself, before any feature's action)."""

    action: ClassVar[str] = "cmd"
    name: str
