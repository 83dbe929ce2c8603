"""The Zalo OA channel's pure rules as tables: the webhook signature, events → Inbound, Zalo's
error codes → the dispatcher's outcomes, the quota's reset, the token key."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.channels.base import OutsideWindow, Rejected, RetryLater, Transient
from bot.channels.zalo_oa import (
    ZaloOaChannel,
    ZaloOaError,
    signature,
    signed,
    to_inbound,
    until_quota_resets,
)
from bot.settings import load_settings
from bot.zalo_oa_tokens import TokenError, fernet

pytestmark = pytest.mark.engine_neutral

SETTINGS = load_settings(
    _env_file=None,
    secret_key="k",
    zalo_oa_app_id="app",
    zalo_oa_webhook_secret="oa-secret-key",
)


def body_of(event: dict) -> bytes:  # type: ignore[type-arg]
    return json.dumps(event).encode()


def test_signature_is_sha256_of_app_body_timestamp_secret() -> None:
    import hashlib

    body = b'{"timestamp": "17"}'
    expected = hashlib.sha256(b"app" + body + b"17" + b"oa-secret-key").hexdigest()
    assert signature("app", body, "17", "oa-secret-key") == "mac=" + expected


@pytest.mark.parametrize(
    "header",
    [None, "", "mac=", "mac=00", "MAC=x", "mac=ấ", "sha256=abc"],
)
def test_anything_but_the_right_mac_is_refused(header: str | None) -> None:
    body = body_of({"event_name": "user_send_text", "timestamp": "17"})
    assert signed(SETTINGS, header, body) is None


def test_right_mac_accepted_but_a_changed_body_or_timestamp_refused() -> None:
    event = {"event_name": "user_send_text", "timestamp": "17", "sender": {"id": "u"}}
    body = body_of(event)
    good = signature("app", body, "17", "oa-secret-key")
    assert signed(SETTINGS, good, body) == event
    assert signed(SETTINGS, good, body.replace(b"17", b"18")) is None
    assert signed(SETTINGS, good, body + b" ") is None
    unset = load_settings(_env_file=None, zalo_oa_app_id="app")  # no secret: nothing passes
    assert signed(unset, good, body) is None


def event(name: str, **extra: object) -> dict:  # type: ignore[type-arg]
    return {"event_name": name, "timestamp": "17", "sender": {"id": "u1"}, **extra}


def test_events_become_inbound_or_nothing() -> None:
    text = to_inbound(event("user_send_text", message={"text": " xin chào ", "msg_id": "m1"}))
    assert text is not None and text.text == "xin chào" and text.key == "m1"
    press = to_inbound(event("user_send_text", message={"text": "#c:d:3:x.sig", "msg_id": "m2"}))
    assert press is not None and press.choice == "d:3:x.sig" and press.text is None
    image = to_inbound(
        event(
            "user_send_image",
            message={"msg_id": "m3", "attachments": [{"payload": {"url": "https://i/1.jpg"}}]},
        )
    )
    assert image is not None and image.attachment is not None
    assert image.attachment.file_ref == "https://i/1.jpg"
    info = to_inbound(event("user_submit_info", info={"name": "An", "phone": "84912000001"}))
    assert info is not None and info.contact is not None and info.contact.is_own
    assert info.contact.phone == "84912000001" and info.key == "user_submit_info:u1:17"
    empty = to_inbound(event("user_submit_info", info={"name": "An"}))
    assert empty is not None and empty.unsupported and empty.contact is None
    sticker = to_inbound(event("user_send_sticker", message={"msg_id": "m4"}))
    assert sticker is not None and sticker.unsupported
    echo = {
        "event_name": "oa_send_text",
        "sender": {"id": "oa"},
        "recipient": {"id": "u1"},
        "message": {"text": "hi", "msg_id": "m5"},
        "timestamp": "17",
    }
    assert to_inbound(echo) is None
    assert to_inbound({"event_name": "follow", "follower": {"id": "u1"}, "timestamp": "1"}) is None
    assert to_inbound(event("user_click_chatnow")) is None


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (-230, OutsideWindow),
        (-213, OutsideWindow),
        (-124, OutsideWindow),
        (-32, RetryLater),
        (-216, Transient),
        (-201, Rejected),
        (500, Transient),
    ],
)
def test_zalo_error_codes_map_to_outcomes(code: int, outcome: type) -> None:
    channel = ZaloOaChannel.__new__(ZaloOaChannel)
    channel._settings = SETTINGS
    from bot.clock import Clock

    channel._clock = Clock()
    result = channel._classify(ZaloOaError(code, "x"))
    assert isinstance(result, outcome)
    if isinstance(result, RetryLater):
        assert result.scope == "channel" and result.seconds >= 60


def test_quota_waits_until_the_next_local_midnight() -> None:
    at = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)  # 23:00 in Hà Nội
    assert 3600 <= until_quota_resets(at, SETTINGS) <= 3600 + 10


def test_tokens_need_the_secret_key_and_only_it_opens_them() -> None:
    with pytest.raises(TokenError):
        fernet(None)
    sealed = fernet("one").encrypt(b"token")
    assert fernet("one").decrypt(sealed) == b"token"
    with pytest.raises(Exception):  # noqa: B017 - InvalidToken
        fernet("two").decrypt(sealed)
