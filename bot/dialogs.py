"""Guided conversations stored as rows.

A flow is a set of named steps; each step has an ``ask`` (what to show) and an ``answer``
(what to do with the reply, returning the next step). The open dialog of a user lives in the
``dialog`` table, so a restart resumes at the same step. Every prompt bumps ``seq`` and its
buttons carry it: a press on an older prompt is recognised as stale and refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import delete
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import col, select

from bot import choices
from bot.context import Ctx
from bot.core import Attachment, Contact, View
from storage.models import Dialog


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass
class Prompt:
    text: str
    options: list[Option] = field(default_factory=list)
    request_contact: str | None = None
    free_text: bool = False  # accept typed text besides the options
    columns: int = 1


@dataclass(frozen=True)
class Answer:
    value: str | None = None  # the chosen option
    text: str | None = None  # typed text that is not an option
    contact: Contact | None = None
    attachment: Attachment | None = None


@dataclass(frozen=True)
class Retry:
    """Stay on the step: show this message, then ask again. Nothing entered so far is lost."""

    key: str
    values: dict[str, Any] = field(default_factory=dict)


# A flow's state: a TypedDict per flow (``class RegisterState(TypedDict, total=False)``), stored
# as the dialog row's JSON ``data``; plain ``dict[str, Any]`` for a flow that declares none.
S = TypeVar("S", bound=Mapping[str, Any])


@dataclass(frozen=True)
class Switch:
    """Leave this flow and start ``flow`` at ``step`` with ``data``."""

    flow: Flow[Any]
    step: str
    data: Mapping[str, Any] = field(default_factory=dict)


Next = str | Retry | Switch | None  # None: the dialog is finished
AskFn = Callable[[Ctx, S], Awaitable[Prompt]]
AnswerFn = Callable[[Ctx, S, Answer], Awaitable[Next]]


class Flow(Generic[S]):
    """A guided conversation: its steps' ``ask`` and ``answer`` functions over a state ``S``.

    Handlers hold the ``Flow`` object and pass it to ``start`` and ``Switch``; the name is only
    what the dialog row stores, so a restart finds the flow again (see ``FLOWS``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.asks: dict[str, AskFn[S]] = {}
        self.answers: dict[str, AnswerFn[S]] = {}

    def ask(self, step: str) -> Callable[[AskFn[S]], AskFn[S]]:
        def register(fn: AskFn[S]) -> AskFn[S]:
            self.asks[step] = fn
            return fn

        return register

    def answer(self, step: str) -> Callable[[AnswerFn[S]], AnswerFn[S]]:
        def register(fn: AnswerFn[S]) -> AnswerFn[S]:
            self.answers[step] = fn
            return fn

        return register


# Every flow by the name its dialog rows store. Filled when a feature module defines its flows;
# a second flow of the same name is a programming error, refused at import.
FLOWS: dict[str, Flow[Any]] = {}


def flow(name: str) -> Flow[Any]:
    """Define a flow; annotate the result with its state: ``x: Flow[XState] = flow("x")``."""
    if name in FLOWS:
        raise ValueError(f"flow {name!r} is defined twice")
    FLOWS[name] = Flow(name)
    return FLOWS[name]


def _flow_of(dialog: Dialog) -> Flow[Any]:
    return FLOWS[dialog.flow]


async def current(ctx: Ctx) -> Dialog | None:
    stmt = select(Dialog).where(
        Dialog.channel == ctx.event.channel, Dialog.user_ref == ctx.event.user_ref
    )
    return (await ctx.session.exec(stmt)).first()


async def start(ctx: Ctx, flow: Flow[S], step: str, data: S | None = None) -> None:
    """Open a dialog (replacing any other one of this user) and ask its first step."""
    flow_name = flow.name
    dialog = await current(ctx)
    if dialog is None:
        dialog = Dialog(
            channel=ctx.event.channel,
            user_ref=ctx.event.user_ref,
            chat_ref=ctx.event.chat_ref,
            flow=flow_name,
            step=step,
            updated_at=ctx.now,
        )
    dialog.flow, dialog.step, dialog.data = flow_name, step, dict(data or {})
    await ask(ctx, dialog)


async def end(ctx: Ctx, dialog: Dialog | None) -> None:
    """Close the dialog; a bulk delete, so it is harmless if something already removed it."""
    if dialog is not None and dialog.id is not None:
        await ctx.session.exec(delete(Dialog).where(col(Dialog.id) == dialog.id))
        ctx.session.expunge(dialog)


def expired(ctx: Ctx, dialog: Dialog) -> bool:
    return (
        dialog.updated_at is not None and ctx.now - dialog.updated_at > ctx.settings.dialog_timeout
    )


async def ask(ctx: Ctx, dialog: Dialog) -> None:
    """Render the dialog's current step and remember which options it offered."""
    prompt = await _flow_of(dialog).asks[dialog.step](ctx, dialog.data)
    dialog.seq += 1
    dialog.updated_at = ctx.now
    dialog.prompt = {
        "options": [[o.value, o.label] for o in prompt.options],
        "free_text": prompt.free_text,
        "contact": prompt.request_contact is not None,
    }
    flag_modified(dialog, "data")
    ctx.session.add(dialog)
    rows = [
        prompt.options[i : i + prompt.columns]
        for i in range(0, len(prompt.options), prompt.columns)
    ]
    ctx.reply(
        View(
            text=prompt.text,
            choices=[
                [ctx.button(o.label, f"d:{dialog.seq}:{o.value}") for o in row] for row in rows
            ],
            request_contact=prompt.request_contact,
        )
    )


def _match_option(options: list[list[str]], text: str) -> str | None:
    """A typed reply that names an option: its number ("2"), its label in any spelling, or a
    synonym that fits ("chưa" for "Không") — the one rule of ``bot.choices``."""
    return choices.pick([[label, value] for value, label in options], text)


def matches_option(dialog: Dialog, text: str | None) -> bool:
    """Whether a typed reply names one of the options the dialog's last prompt offered."""
    options = dialog.prompt.get("options", [])
    return bool(options) and _match_option(options, text or "") is not None


def interpret(
    dialog: Dialog,
    *,
    text: str | None,
    contact: Contact | None,
    value: str | None,
    attachment: Attachment | None = None,
) -> Answer:
    if value is not None:
        return Answer(value=value)
    if contact is not None:
        return Answer(contact=contact)
    if attachment is not None:
        return Answer(text=text, attachment=attachment)
    options = dialog.prompt.get("options", [])
    chosen = _match_option(options, text or "") if options else None
    return Answer(value=chosen) if chosen else Answer(text=text or "")


async def answer(ctx: Ctx, dialog: Dialog, reply: Answer) -> None:
    """Feed a reply to the current step and move the dialog on."""
    prompt = dialog.prompt
    if reply.value is not None and reply.value not in {v for v, _ in prompt.get("options", [])}:
        reply = Answer(text=reply.value)
    typed_only = reply.value is None and reply.contact is None and reply.attachment is None
    if typed_only and reply.text and choices.means_back(reply.text):
        await back(ctx, dialog)
        return
    if typed_only and prompt.get("options") and not prompt.get("free_text"):
        ctx.reply(ctx.t("common.choose_option" if ctx.caps.buttons else "talk.choose_typed"))
        await ask(ctx, dialog)
        return
    next_step = await _flow_of(dialog).answers[dialog.step](ctx, dialog.data, reply)
    await follow(ctx, dialog, next_step)


BACK_TRAIL = "_back"  # the steps answered so far, in the dialog's data: "quay lại" pops one
MAX_TRAIL = 20


async def back(ctx: Ctx, dialog: Dialog) -> None:
    """ "quay lại" in a guided step: the previous question again (nothing else is undone; its
    new answer replaces the old one). At the first question there is nowhere to go back to."""
    trail = dialog.data.get(BACK_TRAIL) or []
    if not trail:
        ctx.reply(ctx.t("talk.back_first"))
    else:
        dialog.step = trail.pop()
        dialog.data[BACK_TRAIL] = trail
    await ask(ctx, dialog)


async def follow(ctx: Ctx, dialog: Dialog, next_step: Next) -> None:
    if isinstance(next_step, Retry):
        ctx.reply(ctx.t(next_step.key, **next_step.values))
        await ask(ctx, dialog)
    elif isinstance(next_step, Switch):
        dialog.flow, dialog.step = next_step.flow.name, next_step.step
        dialog.data = dict(next_step.data)
        await ask(ctx, dialog)
    elif next_step is None:
        await end(ctx, dialog)
    else:
        if next_step != dialog.step:
            trail = [*dialog.data.get(BACK_TRAIL, []), dialog.step][-MAX_TRAIL:]
            dialog.data[BACK_TRAIL] = trail
        dialog.step = next_step
        await ask(ctx, dialog)
