"""Every signaling error code has a message a participant can read, in both languages."""

from __future__ import annotations

import re
from pathlib import Path

from server.i18n import Catalogs
from signaling import errors
from signaling.errors import FALLBACK_USER_MESSAGE, USER_MESSAGES, SignalingError

SIGNALING = Path(errors.__file__).parent


def _codes_in_source() -> set[str]:
    codes: set[str] = set()
    for path in SIGNALING.glob("*.py"):
        codes |= set(re.findall(r"\bcode ?= ?\"([a-z_]+)\"", path.read_text()))
    return codes


def _codes_of_classes() -> set[str]:
    found, todo = set(), [SignalingError]
    while todo:
        cls = todo.pop()
        found.add(cls.code)
        todo += cls.__subclasses__()
    return found


def test_every_code_has_a_user_message() -> None:
    codes = _codes_in_source() | _codes_of_classes()
    assert "bad_sdp" in codes and "flood" in codes  # the scan finds what it should
    assert codes - {"signaling_error"} <= set(USER_MESSAGES)


def test_every_user_message_is_translated_to_chinese() -> None:
    catalogs = Catalogs()
    for message in [*USER_MESSAGES.values(), FALLBACK_USER_MESSAGE]:
        chinese = catalogs.gettext("zh_CN", message)
        assert chinese != message and re.search(r"[\u4e00-\u9fff]", chinese), message
        assert catalogs.gettext("en", message) == message
