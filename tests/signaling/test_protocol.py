from __future__ import annotations

import json

import pytest

from signaling.errors import FloodError, ProtocolError
from signaling.protocol import MAX_MESSAGE_BYTES, FloodLimiter, Sequencer, parse

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"


def code_of(raw: str | bytes) -> str:
    with pytest.raises(ProtocolError) as err:
        parse(raw)
    return err.value.error_code


def test_valid_messages() -> None:
    assert parse('{"type":"join","token":"a.b"}').data == {"token": "a.b"}
    assert parse(json.dumps({"type": "offer", "sdp": SDP})).type == "offer"
    msg = parse('{"type":"request","kind":"torch","to":"a-7","value":true}')
    assert msg.data["value"] is True
    assert parse('{"type":"candidate","candidate":null}').type == "candidate"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "malformed"),
        (b"\xff\xfe", "malformed"),
        ("[1,2]", "malformed"),
        ('{"kind":"offer"}', "bad_field"),
        ('{"type":"teleport"}', "unknown_type"),
        ('{"type":"offer"}', "bad_field"),
        ('{"type":"offer","sdp":42}', "bad_field"),
        ('{"type":"offer","sdp":"hello there"}', "bad_sdp"),
        ('{"type":"answer","publisher":"p","sdp":"v=0\\no=x\\ns=x\\nt=0 0"}', "bad_sdp"),
        ('{"type":"chat","text":"   "}', "bad_field"),
        ('{"type":"request","kind":"selfdestruct","to":"a"}', "bad_field"),
        ('{"type":"response","id":"1","ok":1}', "bad_field"),
        ('{"type":"candidate","sdpMLineIndex":true}', "bad_field"),
    ],
)
def test_bad_input_codes(raw: str | bytes, code: str) -> None:
    assert code_of(raw) == code


def test_oversized_and_sdp_with_control_characters() -> None:
    big = json.dumps({"type": "chat", "text": "x" * MAX_MESSAGE_BYTES})
    assert code_of(big) == "too_large"
    assert code_of(json.dumps({"type": "offer", "sdp": SDP + "a=x\x00y\r\n"})) == "bad_sdp"


def test_sequencer_rules() -> None:
    seq = Sequencer()
    offer = parse(json.dumps({"type": "offer", "sdp": SDP}))
    answer = parse(json.dumps({"type": "answer", "sdp": SDP, "publisher": "i-1"}))
    join = parse('{"type":"join","token":"t"}')
    with pytest.raises(ProtocolError, match="offer before join"):
        seq.check(offer)
    seq.check(join)
    seq.accepted(join)
    with pytest.raises(ProtocolError, match="already"):
        seq.check(join)
    with pytest.raises(ProtocolError, match="answer without an offer") as err:
        seq.check(answer)
    assert err.value.error_code == "out_of_order"
    seq.check(offer)
    seq.accepted(offer)
    with pytest.raises(ProtocolError, match="unanswered"):
        seq.check(offer)
    seq.server_answered()
    seq.server_offered("e-2")
    with pytest.raises(ProtocolError, match="answer without"):
        seq.check(answer)  # answers an offer for another publisher
    seq.server_offered("i-1")
    seq.check(answer)
    seq.accepted(answer)
    with pytest.raises(ProtocolError):
        seq.check(answer)
    seq.check(offer)


def test_flood_limiter() -> None:
    limiter = FloodLimiter(rate=10, burst=5)
    for _ in range(5):
        limiter.hit(now=100.0)
    with pytest.raises(FloodError) as err:
        limiter.hit(now=100.0)
    assert err.value.fatal and err.value.close_code == 4429
    limiter.hit(now=100.2)  # refilled two tokens


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("[" * 5000 + "]" * 5000, "malformed"),
        ('{"type":"chat","text":' + "[" * 100 + "]" * 100 + "}", "malformed"),
        ('{"type":"chat","text":"hi \\ud800"}', "bad_field"),
        ('{"type":"chat","text":"hi \\u0000"}', "bad_field"),
        ('{"type":"chat","text":"hi","\\udfff":1}', "bad_field"),
        ('{"type":"ping","n":NaN}', "malformed"),
    ],
)
def test_depth_and_text_are_checked_before_anything_reads_them(raw: str, code: str) -> None:
    assert code_of(raw) == code


def test_preview_must_be_a_small_jpeg_data_url() -> None:
    import base64

    from signaling.protocol import MAX_PREVIEW_BYTES, PREVIEW_PREFIX

    def msg(image: object) -> str:
        return json.dumps({"type": "preview", "image": image})

    ok = PREVIEW_PREFIX + base64.b64encode(b"\xff\xd8\xff\xe0" + b"x" * 100).decode()
    assert parse(msg(ok)).data["image"] == ok
    full = b"\xff\xd8\xff" + b"\0" * (MAX_PREVIEW_BYTES - 3)  # exactly at the cap
    assert parse(msg(PREVIEW_PREFIX + base64.b64encode(full).decode())).type == "preview"
    for image, code in [
        ("data:image/png;base64,iVBORw0KGgo=", "bad_preview"),
        ("javascript:alert(1)", "bad_preview"),
        (PREVIEW_PREFIX + "%%%%", "bad_preview"),
        (PREVIEW_PREFIX + "aGVsbG8=", "bad_preview"),  # "hello": base64, but no JPEG
        (PREVIEW_PREFIX + "A" * (4 * MAX_PREVIEW_BYTES // 3 + 8), "preview_too_large"),
        (None, "bad_field"),
    ]:
        with pytest.raises(ProtocolError) as err:
            parse(msg(image))
        assert err.value.error_code == code, image
