"""Telegram updates read as the Bot API's JSON (issue 14's core throughput: no PTB ``Update``).

The e2e suites drive these through the fake Bot API server (polling and webhook); here the
fields that decide who someone is and where a reply goes are checked one by one, with the
updates a forger or a broken client could send."""

from __future__ import annotations

from typing import Any

import pytest

from bot.channels.telegram import to_inbound, well_formed
from bot.core import Attachment, Contact

USER = {"id": 501, "is_bot": False, "first_name": "Lan", "last_name": "Trần", "language_code": "vi"}


def message(**fields: Any) -> dict[str, Any]:
    body = {
        "message_id": 7,
        "date": 0,
        "chat": {"id": 501, "type": "private"},
        "from": USER,
        **fields,
    }
    return {"update_id": 10, "message": body}


def press(**fields: Any) -> dict[str, Any]:
    query = {
        "id": "q1",
        "from": USER,
        "data": "d:1:yes",
        "message": {"message_id": 3, "chat": {"id": -100, "type": "supergroup"}, "date": 0},
        **fields,
    }
    return {"update_id": 11, "callback_query": query}


def test_a_text_message_names_its_sender_chat_and_language() -> None:
    event = to_inbound(message(text="  Xin chào\u200b "))
    assert event is not None
    assert (event.key, event.user_ref, event.chat_ref) == ("10", "501", "501")
    assert (event.text, event.display_name, event.language_hint) == ("Xin chào", "Lan Trần", "vi")
    assert not event.in_group and event.thread_ref is None and event.reply_to_ref is None


def test_a_contact_is_the_senders_own_only_when_its_user_id_is_the_senders() -> None:
    own = to_inbound(message(contact={"phone_number": "84912000001", "user_id": 501}))
    assert own is not None and own.contact == Contact("84912000001", True)
    for forged in ({"user_id": 502}, {}, {"user_id": True}, {"user_id": "501"}):
        other = to_inbound(message(contact={"phone_number": "84912000001", **forged}))
        assert other is not None and other.contact == Contact("84912000001", False)
    in_group = message(contact={"phone_number": "849", "user_id": 501})
    in_group["message"]["chat"] = {"id": -5, "type": "group"}
    assert to_inbound(in_group) is None  # a contact in a group is nobody's registration


def test_a_button_press_answers_in_the_chat_of_its_message_or_else_the_senders() -> None:
    event = to_inbound(press())
    assert event is not None
    assert (event.user_ref, event.chat_ref, event.choice) == ("501", "-100", "d:1:yes")
    without = press()
    del without["callback_query"]["message"]  # too old a message: Telegram leaves it out
    event = to_inbound(without)
    assert event is not None and event.chat_ref == "501"
    event = to_inbound(press(data=None))  # a game's button carries no data
    assert event is not None and event.choice == ""


def test_topics_replies_and_attachments_are_read_as_ptb_read_them() -> None:
    topic = message(text="hỏi", message_thread_id=42, is_topic_message=True)
    topic["message"]["chat"] = {"id": -100, "type": "supergroup", "is_forum": True}
    event = to_inbound(topic)
    assert event is not None and event.in_group and event.thread_ref == "42"
    not_topic = to_inbound(message(text="x", message_thread_id=42))  # a reply thread only
    assert not_topic is not None and not_topic.thread_ref is None
    reply = to_inbound(message(text="ok", reply_to_message={"message_id": 99, "date": 0}))
    assert reply is not None and reply.reply_to_ref == "99"
    photo = to_inbound(
        message(
            caption="ảnh lỗi",
            photo=[
                {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
                {
                    "file_id": "big",
                    "file_unique_id": "b",
                    "width": 900,
                    "height": 900,
                    "file_size": 120_000,
                },
            ],
        )
    )
    assert photo is not None and photo.text == "ảnh lỗi"
    assert photo.attachment == Attachment("photo", "big", 120_000, "image/jpeg")
    doc = to_inbound(
        message(
            document={
                "file_id": "f",
                "file_unique_id": "u",
                "mime_type": "application/pdf",
                "file_name": "dsach.pdf",
                "file_size": 10,
            }
        )
    )
    assert doc is not None
    assert doc.attachment == Attachment("document", "f", 10, "application/pdf", "dsach.pdf")


def test_what_the_bot_ignores_and_what_it_cannot_read() -> None:
    bot_sender = message(text="hi")
    bot_sender["message"]["from"] = {**USER, "is_bot": True}
    assert to_inbound(bot_sender) is None
    anonymous = message(text="hi")
    del anonymous["message"]["from"]  # a channel post forwarded into a group
    assert to_inbound(anonymous) is None
    assert to_inbound({"update_id": 3, "edited_message": message()["message"]}) is None
    sticker = to_inbound(message(sticker={"file_id": "s"}))
    assert sticker is not None and sticker.unsupported  # in a private chat: "I read text"
    in_group = message(sticker={"file_id": "s"})
    in_group["message"]["chat"] = {"id": -5, "type": "group"}
    assert to_inbound(in_group) is None  # in a group: silence


@pytest.mark.parametrize(
    "update",
    [
        None,
        [1, 2],
        {"update_id": "10"},
        {"update_id": True},
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": "abc"}}},
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 5}, "from": {"id": [1]}}},
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 5}, "from": "Lan"}},
        {"update_id": 1, "message": "hi"},
        message(contact={"user_id": 501}),  # no phone number
        message(contact="84912000001"),
        message(photo={"file_id": "x"}),
        message(document=["x"]),
        message(reply_to_message=99),
        {"update_id": 2, "callback_query": {"id": "q", "data": "x"}},  # from nobody
        {"update_id": 2, "callback_query": {"id": "q", "from": {"id": 1}, "message": {"chat": 5}}},
        {"update_id": 2, "callback_query": "press"},
    ],
)
def test_a_malformed_update_is_refused_before_anything_reads_it(update: Any) -> None:
    assert not well_formed(update)


def test_well_formed_updates_pass() -> None:
    assert well_formed(message(text="hi"))
    assert well_formed(press())
    assert well_formed({"update_id": 4, "my_chat_member": {}})  # ignored later, not refused
