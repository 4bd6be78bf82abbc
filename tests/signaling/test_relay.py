"""The relay with real aiortc peers over loopback: forwarding, key frames, no transcoding."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Any

import aiortc
import av
import pytest
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender

from signaling.candidates import pin_candidates
from signaling.client import PATTERN_BARS, MediaClient
from signaling.packets import (
    PINNED_AIORTC,
    PacketSink,
    PacketTrack,
    check_aiortc,
    require_private,
    vp8_dimensions,
    vp8_is_keyframe,
)
from signaling.relay import (
    BadSessionDescriptionError,
    RelayConfig,
    RelayEvent,
    RelayRoom,
    UnknownParticipantError,
)

LOOPBACK = ("127.0.0.1",)


@pytest.fixture
async def room() -> AsyncIterator[RelayRoom]:
    room = RelayRoom("test-room", RelayConfig(host_addresses=LOOPBACK))
    yield room
    await room.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[MediaClient]]:
    made: list[MediaClient] = []
    yield made
    for client in made:
        await client.close()


def new_client(clients: list[MediaClient], *, keep_last_frame: bool = False) -> MediaClient:
    client = MediaClient(host_addresses=LOOPBACK, keep_last_frame=keep_last_frame)
    clients.append(client)
    return client


async def publish(room: RelayRoom, client: MediaClient, pid: str) -> None:
    answer = await room.add_participant(pid, await client.publish_offer("testsrc"))
    await client.accept_publish_answer(answer)


async def subscribe(room: RelayRoom, client: MediaClient, sub: str, pub: str) -> None:
    offer = await room.subscribe(sub, pub)
    await room.accept_answer(sub, pub, await client.accept_subscription(pub, offer))


def test_hooks_match_pinned_aiortc() -> None:
    assert aiortc.__version__ == PINNED_AIORTC
    check_aiortc()
    # The private names the hooks rely on (see signaling/packets.py).
    assert callable(RTCRtpSender._send_keyframe)
    assert callable(RTCRtpReceiver._send_rtcp_pli)
    assert "pack" in vars(Vp8Encoder)
    # signaling/sending.py replaces these two per relay sender.
    assert callable(RTCRtpSender._run_rtp) and callable(RTCRtpSender._retransmit)
    # Every hook refuses an object without the private names it needs, naming the name.
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000)
    require_private(codec, ["mimeType"])
    with pytest.raises(RuntimeError, match=r"^aiortc RTCRtpCodecParameters has no _gone$"):
        require_private(codec, ["mimeType", "_gone"])


def test_vp8_header_parsing() -> None:
    key = bytes([0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01])
    assert vp8_is_keyframe(key)
    assert vp8_dimensions(key) == (640, 480)
    assert not vp8_is_keyframe(b"\x31\x00")
    assert vp8_dimensions(b"\x31\x00\x00\x00") is None


def test_packet_sink_follows_the_codec_of_each_frame() -> None:
    """The sink caches per-codec facts; a different codec object must not reuse them."""
    out: list[av.Packet[Any]] = []
    sink = PacketSink("video", out.append)
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    h264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
    opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111)
    sink.put((vp8, JitterFrame(data=b"\x00key", timestamp=3000)))
    sink.put((vp8, JitterFrame(data=b"\x01delta", timestamp=6000)))
    sink.put((h264, JitterFrame(data=b"\x00nal", timestamp=9000)))
    sink.put((opus, JitterFrame(data=b"\x01opus", timestamp=960)))
    sink.put((vp8, JitterFrame(data=b"", timestamp=12000)))
    assert [(p.pts, p.dts, p.time_base, p.is_keyframe) for p in out] == [
        (3000, 3000, Fraction(1, 90000), True),
        (6000, 6000, Fraction(1, 90000), False),
        (960, 960, Fraction(1, 48000), True),
    ]
    assert [bytes(p) for p in out] == [b"\x00key", b"\x01delta", b"\x01opus"]
    assert (sink.frames, sink.skipped, sink.bytes) == (3, 2, 15)


async def test_packet_track_gates_and_drops() -> None:
    requests: list[int] = []
    track = PacketTrack("video", 2, lambda: requests.append(1))

    def packet(key: bool) -> av.Packet[Any]:
        p = av.Packet(b"\x00" if key else b"\x01")
        p.pts, p.time_base, p.is_keyframe = 0, Fraction(1, 90000), key
        return p

    track.offer(packet(True))
    assert track.offered == 0  # inactive: nobody drains the queue yet
    track.activate()
    assert requests  # activation asks for a key frame
    track.offer(packet(False))
    assert track.dropped == 1  # a delta before the first key frame is useless
    track.offer(packet(True))
    track.offer(packet(False))
    track.offer(packet(False))  # queue full (2): dropped, waits for a key frame again
    assert track.dropped == 2
    track.offer(packet(False))
    assert track.dropped == 3
    assert track.overflows == 1
    assert (await track.recv()).is_keyframe
    track.stop()


async def test_two_subscribers_decode_pattern_without_transcoding(
    room: RelayRoom, clients: list[MediaClient]
) -> None:
    publisher = new_client(clients)
    await publish(room, publisher, "applicant")
    subscribers = [new_client(clients, keep_last_frame=True) for _ in range(2)]
    for i, client in enumerate(subscribers):
        await subscribe(room, client, f"viewer{i}", "applicant")
    for client in subscribers:
        await client.wait_for_video("applicant", frames=30, within=10)
    for client in subscribers:
        media = client.received["applicant"]
        assert (media.width, media.height) == (640, 480)
        assert media.audio_frames > 20
        frame = media.last_frame
        assert frame is not None
        image = frame.to_image()  # type: ignore[no-untyped-call]
        for index, colour in enumerate(PATTERN_BARS):
            pixel = image.getpixel((index * 80 + 10, 20))
            assert isinstance(pixel, tuple)
            assert all(abs(a - b) < 40 for a, b in zip(pixel, colour, strict=False))

    # No transcoding: the publisher's receivers hand packets to sinks (no decoder), the
    # relay's senders never create an encoder (not even one that only packs), and
    # the bytes forwarded to each subscriber are the bytes received from the publisher.
    pc = room.publish_connection("applicant")
    assert pc is not None
    for receiver in pc.getReceivers():
        assert isinstance(receiver._RTCRtpReceiver__decoder_queue, PacketSink)  # type: ignore[attr-defined]
    stats = room.publication("applicant").stats
    for i in range(2):
        subscription = room.subscription(f"viewer{i}", "applicant")
        assert subscription is not None
        for transceiver in subscription.pc.getTransceivers():
            # The relay's send loop (signaling/sending.py) never asks for an encoder.
            assert transceiver.sender._RTCRtpSender__encoder is None  # type: ignore[attr-defined]
            assert transceiver.sender._run_rtp == subscription.senders[transceiver.kind].run
        video = subscription.tracks["video"]
        assert video.overflows == 0  # (deltas before the first key frame are "dropped")
        assert 0 < video.forwarded_bytes <= stats.bytes["video"]
        # Sent straight from the publisher's packet callback: nothing had to wait.
        for sender in subscription.senders.values():
            assert sender.errors == 0

    # The upstream's SRTP was handled in the socket callback (signaling/receiving.py), not
    # by aiortc's receive task, and counted in the transport's stats as aiortc counts it.
    [path] = room.receive_paths["applicant"]
    assert path.handlers.errors == path.handlers.suspended == 0
    assert publisher.publish_pc is not None
    sent = sum(
        s.packetsSent
        for s in (await publisher.publish_pc.getStats()).values()
        if s.type == "outbound-rtp"
    )
    transport = next(s for s in (await pc.getStats()).values() if s.type == "transport")
    assert 0.9 * sent <= path.packets <= transport.packetsReceived

    # Byte for byte: a third viewer takes the encoded frames without decoding; once the
    # publisher stops, it holds exactly the bytes the relay sent it.
    counter = MediaClient(host_addresses=LOOPBACK, decode=False)
    clients.append(counter)
    await subscribe(room, counter, "counter", "applicant")
    await counter.wait_for_video("applicant", frames=10, within=10)
    await publisher.close()
    await asyncio.sleep(0.5)
    sent = room.subscription("counter", "applicant")
    assert sent is not None
    assert counter.received["applicant"].video_bytes == sent.tracks["video"].forwarded_bytes


async def test_broken_srtp_datagrams_are_dropped_and_media_carries_on(
    room: RelayRoom, clients: list[MediaClient]
) -> None:
    publisher = new_client(clients)
    await publish(room, publisher, "applicant")
    viewer = new_client(clients)
    await subscribe(room, viewer, "viewer", "applicant")
    await viewer.wait_for_video("applicant", frames=5, within=10)
    [path] = room.receive_paths["applicant"]
    # The relay's socket for this publisher (the nominated ICE pair's local end).
    pair = path.dtls.transport._connection._nominated[1]
    address = pair.protocol.transport.get_extra_info("sockname")[:2]
    before = path.packets
    forged = [
        b"\x80",  # one byte
        b"\x80\x60" + bytes(10),  # an RTP header and nothing else
        b"\x90\xe0" + bytes(range(200)),  # RTP-looking, not SRTP-authenticated
        b"\x81\xc8" + bytes(60),  # an SRTCP-looking sender report
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data in forged * 25:
            sock.sendto(data, address)
    frames = viewer.received["applicant"].video_frames
    await asyncio.sleep(0.5)
    assert path.packets >= before + len(forged) * 25 - 5  # they did reach the receive path
    assert path.handlers.errors == 0  # ... and were dropped by SRTP, not by an exception
    assert viewer.received["applicant"].video_frames > frames + 5
    assert room.publish_connection("applicant") is not None
    assert room.publish_connection("applicant").connectionState == "connected"  # type: ignore[union-attr]


async def test_late_joiner_sees_video_within_a_second(
    room: RelayRoom, clients: list[MediaClient]
) -> None:
    publisher = new_client(clients)
    await publish(room, publisher, "inspector")
    early = new_client(clients)
    await subscribe(room, early, "early", "inspector")
    await early.wait_for_video("inspector", frames=20, within=10)
    # aiortc's encoder makes a key frame only every 100 s: the late joiner relies on the
    # relay asking the publisher for one.
    late = new_client(clients)
    started = time.monotonic()
    await subscribe(room, late, "late", "inspector")
    await late.wait_for_video("inspector", frames=1, within=3)
    assert time.monotonic() - started < 1.0
    assert room.publication("inspector").stats.keyframes >= 2


async def test_subscriber_pli_reaches_publisher(
    room: RelayRoom, clients: list[MediaClient]
) -> None:
    publisher = new_client(clients)
    await publish(room, publisher, "pub")
    viewer = new_client(clients)
    await subscribe(room, viewer, "viewer", "pub")
    await viewer.wait_for_video("pub", frames=10, within=10)
    await asyncio.sleep(0.4)  # past the key frame throttle
    before = room.publication("pub").stats.keyframes
    receiver = next(
        t.receiver for t in viewer.subscriptions["pub"].getTransceivers() if t.kind == "video"
    )
    subscription = room.subscription("viewer", "pub")
    assert subscription is not None
    ssrc = next(t.sender._ssrc for t in subscription.pc.getTransceivers() if t.kind == "video")
    await receiver._send_rtcp_pli(ssrc)
    for _ in range(100):
        if room.publication("pub").stats.keyframes > before:
            break
        await asyncio.sleep(0.01)
    assert room.publication("pub").stats.keyframes > before


async def test_snapshot_packets_decode_to_the_pattern(
    room: RelayRoom, clients: list[MediaClient]
) -> None:
    publisher = new_client(clients)
    await publish(room, publisher, "applicant")
    packets = await room.fresh_video_packets("applicant", within=5)
    assert packets[0].is_keyframe
    decoder = av.CodecContext.create("libvpx", "r")
    frames = [f for p in packets[:1] for f in decoder.decode(p)]
    assert isinstance(frames[0], av.VideoFrame)
    assert (frames[0].width, frames[0].height) == (640, 480)
    image = frames[0].to_image()  # type: ignore[no-untyped-call]
    pixel = image.getpixel((5 * 80 + 10, 20))
    assert isinstance(pixel, tuple)
    assert all(abs(a - b) < 40 for a, b in zip(pixel, PATTERN_BARS[5], strict=False))
    assert room.latest_video_packets("applicant")[0].is_keyframe
    with pytest.raises(UnknownParticipantError):
        room.latest_video_packets("nobody")


async def test_four_participants_receive_each_other(clients: list[MediaClient]) -> None:
    events: list[RelayEvent] = []
    room = RelayRoom("four", RelayConfig(host_addresses=LOOPBACK), on_event=events.append)
    try:
        names = ["applicant", "inspector", "expert", "observer"]
        people = {name: new_client(clients) for name in names}
        for name, client in people.items():
            await publish(room, client, name)
        for sub in names:
            for pub in names:
                if sub != pub:
                    await subscribe(room, people[sub], sub, pub)
        for sub in names:
            for pub in names:
                if sub != pub:
                    await people[sub].wait_for_video(pub, frames=5, within=15)
        await asyncio.sleep(0.5)
        for sub in names:
            received = people[sub].received
            assert set(received) == set(names) - {sub}
            for media in received.values():
                assert (media.width, media.height) == (640, 480)
                assert media.audio_frames > 0
        assert len(room.subscriptions()) == 12
        connected = {(e.participant, e.publisher) for e in events if e.state == "connected"}
        assert len(connected) == 16  # 4 publish + 12 subscribe connections
        await room.remove_participant("expert")
        assert all("expert" not in pair for pair in room.subscriptions())
        assert "expert" not in room.publishers
    finally:
        await room.close()


async def test_publisher_reconnect_keeps_subscriptions(
    room: RelayRoom, clients: list[MediaClient]
) -> None:
    first = new_client(clients)
    await publish(room, first, "phone")
    viewer = new_client(clients)
    await subscribe(room, viewer, "desk", "phone")
    await viewer.wait_for_video("phone", frames=10, within=10)
    await first.close()  # the phone drops; its page builds a new peer connection
    second = new_client(clients)
    await publish(room, second, "phone")
    frames = viewer.received["phone"].video_frames
    await viewer.wait_for_video("phone", frames=frames + 15, within=5)


async def test_bad_sdp_is_refused_and_room_carries_on(
    room: RelayRoom, clients: list[MediaClient]
) -> None:
    with pytest.raises(BadSessionDescriptionError):
        await room.add_participant("mallory", "not an sdp")
    with pytest.raises(BadSessionDescriptionError):
        await room.add_participant("mallory", "v=0\r\nthis is not sdp\r\n")
    with pytest.raises(UnknownParticipantError):
        await room.subscribe("mallory", "nobody")
    publisher = new_client(clients)
    await publish(room, publisher, "ok")
    viewer = new_client(clients)
    await subscribe(room, viewer, "v", "ok")
    await viewer.wait_for_video("ok", frames=5, within=10)


async def test_public_address_is_announced(room: RelayRoom) -> None:
    pinned = RelayRoom("pinned", RelayConfig(host_addresses=LOOPBACK, public_address="203.0.113.7"))
    client = MediaClient(host_addresses=LOOPBACK)
    try:
        answer = await pinned.add_participant("p", await client.publish_offer("testsrc"))
        candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
        assert candidates
        assert all(" 203.0.113.7 " in line for line in candidates)
        assert "c=IN IP4 203.0.113.7" in answer
    finally:
        await client.close()
        await pinned.close()
    sdp = "v=0\r\nc=IN IP4 10.0.0.2\r\na=candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host\r\n"
    assert "198.51.100.1 5000 typ host" in pin_candidates(sdp, "198.51.100.1")
    assert pin_candidates(sdp, None) == sdp


async def test_keyframe_request_after_a_retransmission(
    room: RelayRoom, clients: list[MediaClient]
) -> None:
    """Once RTX packets arrived the receiver also knows the RTX SSRC; key frame requests
    must still go to the media SSRC (a PLI to the RTX SSRC is ignored by the publisher)."""
    publisher = new_client(clients)
    await publish(room, publisher, "phone")
    viewer = new_client(clients)
    await subscribe(room, viewer, "desk", "phone")
    await viewer.wait_for_video("phone", frames=10, within=10)
    pc = room.publish_connection("phone")
    assert pc is not None
    receiver = next(t.receiver for t in pc.getTransceivers() if t.kind == "video")
    sink = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
    assert isinstance(sink, PacketSink) and sink.assembler.ssrc is not None
    before = room.publication("phone").stats.keyframes
    media_ssrc = sink.assembler.ssrc
    for _ in range(3):
        await asyncio.sleep(0.35)  # past the key frame throttle
        # Ask the publisher to retransmit recent packets: they come back on the RTX SSRC,
        # which then is the SSRC most recently seen by the receiver.
        for _attempt in range(5):
            last_seq = getattr(sink.assembler, "last_seq", None)
            assert last_seq is not None
            lost = [last_seq - i for i in range(4, -1, -1)]
            await receiver._send_rtcp_nack(media_ssrc, lost)
            for _ in range(100):
                sources = receiver.getSynchronizationSources()
                newest = max(sources, key=lambda s: s.timestamp)
                if newest.source != media_ssrc:
                    break
                await asyncio.sleep(0.002)
            if newest.source != media_ssrc:
                break
        assert newest.source != media_ssrc  # an RTX packet was the last to arrive
        await room.request_keyframe("phone")
    for _ in range(150):
        if room.publication("phone").stats.keyframes >= before + 3:
            break
        await asyncio.sleep(0.01)
    assert room.publication("phone").stats.keyframes >= before + 3


async def test_subscriber_leaving_and_resubscribing(
    room: RelayRoom, clients: list[MediaClient]
) -> None:
    publisher = new_client(clients)
    await publish(room, publisher, "pub")
    first = new_client(clients)
    await subscribe(room, first, "viewer", "pub")
    await first.wait_for_video("pub", frames=5, within=10)
    # The viewer's page reloads: a new client re-subscribes; the old connection's late
    # "closed" must not take the new subscription down with it.
    second = new_client(clients)
    await subscribe(room, second, "viewer", "pub")
    await first.close()
    await second.wait_for_video("pub", frames=5, within=10)
    await asyncio.sleep(0.5)
    assert room.subscriptions() == [("viewer", "pub")]
    frames = second.received["pub"].video_frames
    await second.wait_for_video("pub", frames=frames + 10, within=5)
    # A viewer that goes away is forgotten once its connection closes.
    await second.close()
    for _ in range(300):
        if not room.subscriptions():
            break
        await asyncio.sleep(0.01)
    assert room.subscriptions() == []
