"""The Zalo channel's pure parts: events → Inbound, numbered choices, error outcomes."""

from __future__ import annotations

import pytest

from bot.channels.base import Blocked, ChannelPaused, Rejected, Transient
from bot.channels.zalo import (
    ZaloApiError,
    classify,
    events_of,
    numbered,
    pick,
    to_inbound,
    unwrap,
)
from bot.core import Choice


def text_event(text: str, **message: object) -> dict:  # type: ignore[type-arg]
    return {
        "event_name": "message.text.received",
        "message": {
            "message_id": "m-1",
            "date": 1_760_000_000_000,  # milliseconds
            "text": text,
            "from": {"id": "u-42", "display_name": "Hoa", "is_bot": False},
            "chat": {"id": "u-42", "chat_type": "PRIVATE"},
            **message,
        },
    }


def test_text_event_becomes_inbound_keyed_by_message_id() -> None:
    event = to_inbound(text_event("  Xin chào\u200b "))
    assert event is not None
    assert (event.channel, event.key, event.user_ref, event.chat_ref) == (
        "zalo",
        "m-1",
        "u-42",
        "u-42",
    )
    assert event.text == "Xin chào"  # cleaned: trimmed, invisible characters removed
    assert event.choice is None and event.contact is None and event.display_name == "Hoa"
    assert event.language_hint is None  # Zalo sends no language


def test_command_and_language_hint_when_present() -> None:
    event = to_inbound(text_event("/start ABC", **{"from": {"id": "u-1", "language_code": "en"}}))
    assert event is not None and event.command == ("start", "ABC")
    assert event.language_hint == "en"


def test_image_event_carries_the_photo_url_as_attachment() -> None:
    event = to_inbound(
        {
            "event_name": "message.image.received",
            "message": {
                "message_id": "m-2",
                "photo": "https://z.example/p.jpg",  # as documented (photo_url also read)
                "caption": "Lỗi đăng nhập",
                "from": {"id": "u-1"},
                "chat": {"id": "u-1", "chat_type": "PRIVATE"},
            },
        }
    )
    assert event is not None and event.attachment is not None
    assert (event.attachment.kind, event.attachment.file_ref) == (
        "photo",
        "https://z.example/p.jpg",
    )
    assert event.text == "Lỗi đăng nhập"


def test_sticker_is_unsupported_and_groups_and_bots_are_ignored() -> None:
    sticker = to_inbound(
        {
            "event_name": "message.sticker.received",
            "message": {"message_id": "m-3", "sticker": "s", "from": {"id": "u-1"}, "chat": {}},
        }
    )
    assert sticker is not None and sticker.unsupported and sticker.chat_ref == "u-1"
    assert to_inbound(text_event("hi", chat={"id": "g-1", "chat_type": "GROUP"})) is None
    assert to_inbound(text_event("hi", **{"from": {"id": "b", "is_bot": True}})) is None
    assert to_inbound({"event_name": "message.text.received"}) is None
    assert to_inbound(text_event("hi", message_id="")) is None


def test_webhook_body_wrapped_or_flat() -> None:
    event = text_event("hi")
    assert unwrap({"ok": True, "result": event}) == event
    assert unwrap(event) == event
    assert unwrap({"ok": True}) is None
    assert unwrap(["not", "an", "object"]) is None


def test_get_updates_result_as_object_list_or_nothing() -> None:
    event = text_event("hi")
    assert events_of(event) == [event]
    assert events_of([event, "junk", event]) == [event, event]
    assert events_of(None) == [] and events_of({}) == []


CHOICES = [["✓ Tham dự", "DATA-YES"], ["✗ Vắng, có lý do", "DATA-NO"], ["Tiếng Việt", "DATA-VI"]]


@pytest.mark.parametrize(
    ("typed", "data"),
    [
        ("1", "DATA-YES"),
        (" 2 ", "DATA-NO"),
        ("2.", "DATA-NO"),
        ("3)", "DATA-VI"),
        ("tham du", "DATA-YES"),  # the label, without the mark in front and without diacritics
        ("✓ THAM DỰ", "DATA-YES"),
        ("Vang, co ly do", "DATA-NO"),
        ("tiếng việt", "DATA-VI"),
        ("4", None),  # no fourth choice
        ("0", None),
        ("12 giờ", None),  # ordinary text
        ("/start", None),  # commands stay commands
        ("", None),
        ("✓", None),
    ],
)
def test_pick_by_number_or_label(typed: str, data: str | None) -> None:
    assert pick(CHOICES, typed) == data


def test_pick_without_choices_is_none() -> None:
    assert pick([], "1") is None


def test_numbered_renders_choices_under_the_text() -> None:
    choices = [Choice("Có", "a"), Choice("Không", "b")]
    assert numbered("Đồng chí có dùng điện thoại thông minh không?", choices) == (
        "Đồng chí có dùng điện thoại thông minh không?\n───────────\n[1] Có\n[2] Không"
    )
    assert numbered("Chỉ chữ", []) == "Chỉ chữ"


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        # Zalo's error table (https://bot.zapps.me/docs/error-code/)
        (ZaloApiError(403, "Internal server error"), Transient),  # never "blocked"
        (ZaloApiError(408, "Request timeout"), Transient),
        (ZaloApiError(429, "Quota exceeded"), ChannelPaused),
        (ZaloApiError(401, "Unauthorized"), ChannelPaused),
        (ZaloApiError(400, "Bad request: the user has blocked the bot"), Blocked),
        (ZaloApiError(400, "Bad request: chat not found"), Blocked),
        (ZaloApiError(500, "Internal Server Error"), Transient),
        (ZaloApiError(502, "Bad Gateway"), Transient),
        (ZaloApiError(400, "Bad request: text is too long"), Rejected),
        (ZaloApiError(404, "Not found"), Rejected),
    ],
)
def test_errors_map_to_dispatcher_outcomes(error: ZaloApiError, outcome: type) -> None:
    assert isinstance(classify(error), outcome)


def test_quota_pauses_the_whole_channel_for_the_pause_given_and_a_bad_token_for_long() -> None:
    quota = classify(ZaloApiError(429, "Quota exceeded"), quota_pause=240.0)
    assert isinstance(quota, ChannelPaused) and quota.seconds == 240.0
    token = classify(ZaloApiError(401, "Unauthorized"))
    assert isinstance(token, ChannelPaused) and token.seconds >= 3600


def test_own_messages_and_hidden_content() -> None:
    own = text_event("echo", **{"from": {"id": "bot1"}})  # no is_bot flag: the id decides
    assert to_inbound(own, bot_id="bot1") is None
    assert to_inbound(own) is not None  # without knowing our id it is someone's message
    hidden = to_inbound(
        {
            "event_name": "message.unsupported.received",
            "message": {"message_id": "m-9", "from": {"id": "u-1"}, "chat": {"id": "u-1"}},
        }
    )
    assert hidden is not None and hidden.hidden and not hidden.unsupported


def test_choices_stand_apart_from_an_answers_own_numbered_steps() -> None:
    from bot.channels.zalo import RULE, numbered, pick
    from bot.core import Choice

    answer = "Cách đăng nhập:\n1. Mở ứng dụng Sổ tay\n2. Nhập mã OTP"
    text = numbered(answer, [Choice("✓ Đã giải quyết", "a"), Choice("Chưa", "b")])
    steps, choices = text.split(RULE)
    assert "1. Mở ứng dụng" in steps and "[1]" not in steps
    assert choices.strip().splitlines() == ["[1] ✓ Đã giải quyết", "[2] Chưa"]
    offered = [["✓ Đã giải quyết", "a"], ["Chưa", "b"]]
    assert pick(offered, "[2]") == "b" and pick(offered, "2") == "b" and pick(offered, "2.") == "b"
