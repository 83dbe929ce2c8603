"""The terminal channel: a member's chat in a console, for the demo and for tests.

Choices are printed as a numbered list and answered by number or label. There is no contact
button, so a phone number is typed (and then needs the secretary's approval). Several people can
take turns (``:user NAME``); messages for someone else wait in the outbox until it is their turn.
Files (a chart, an export) are written to ``files_dir`` (a temporary directory by default) and
their path is printed.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import TextIO

from bot import choices
from bot.channels.base import Capabilities, RetryLater
from bot.core import Inbound, Upload, View, clean_text

PROMPT = "> "
_ids = itertools.count(1)


class TerminalChannel:
    name = "terminal"
    text_limit = 4096
    # Numbered choices like Zalo; files are written to a folder and their path printed.
    capabilities = Capabilities(buttons=False, edits=True, uploads=True, text_limit=4096)

    def __init__(self, user: str, out: TextIO | None = None, files_dir: Path | None = None) -> None:
        self.user = user
        self.out = out or sys.stdout
        self.files_dir = files_dir
        self._choices: list[tuple[str, str]] = []
        self._run = f"{id(self):x}"

    async def send(self, chat_ref: str, view: View) -> str:
        if chat_ref != self.user:
            raise RetryLater(3600)  # delivered when that person takes the keyboard
        self._print(view)
        return str(next(_ids))

    def _print(self, view: View) -> None:
        prefix = "(cập nhật) " if view.edit_ref else "[ảnh] " if view.photo_ref else ""
        lines = ["", prefix + view.text]
        if view.upload is not None:
            lines.append(f"[{view.upload.kind}] {self._save(view.upload)}")
        choices = [choice for row in view.choices for choice in row]
        if choices:
            self._choices = [(c.label, c.data) for c in choices]
            lines += [f"  {i}. {c.label}" for i, c in enumerate(choices, 1)]
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def _save(self, upload: Upload) -> Path:
        """Write the file under a name of its own (never overwriting an earlier one)."""
        if self.files_dir is None:
            self.files_dir = Path(tempfile.mkdtemp(prefix="sotay-files-"))
        self.files_dir.mkdir(parents=True, exist_ok=True)
        safe = Path(upload.name).name or "file"
        path = self.files_dir / f"{next(_ids)}-{safe}"
        path.write_bytes(upload.data)
        return path

    def switch(self, user: str) -> None:
        self.user = user
        self._choices = []

    def inbound(self, line: str) -> Inbound:
        """Turn a typed line into an event; a number or label of the last choices presses it."""
        text = clean_text(line)
        key = f"{self._run}-{next(_ids)}"
        choice = self._pressed(text)
        common = partial(
            Inbound, channel=self.name, user_ref=self.user, chat_ref=self.user, key=key
        )
        if choice is not None:
            return common(choice=choice)
        return common(text=text)

    def _pressed(self, text: str) -> str | None:
        if not self._choices or text.startswith("/"):
            return None
        return choices.pick([list(pair) for pair in self._choices], text)
