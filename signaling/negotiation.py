"""SDP handling shared by the relay's connections: codec choice, validation, gathering.

Errors raised here (and by the relay) form one tree under :class:`RelayError`; the
messages name the room and the participant so that a log line is enough.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from signaling.candidates import gather_on
from signaling.twcc import TWCC_URI

KINDS = ("audio", "video")


class RelayError(Exception):
    """Base of the relay's errors; the message names the room and participant."""


class UnknownParticipantError(RelayError):
    pass


class RoomClosedError(RelayError):
    pass


class BadSessionDescriptionError(RelayError):
    pass


def prefer_relay_codecs(transceiver: RTCRtpTransceiver) -> None:
    """VP8 (+RTX) for video and Opus for audio: the only codecs forwarded and recorded."""
    wanted = {"video": ("video/vp8", "video/rtx"), "audio": ("audio/opus",)}[transceiver.kind]
    capabilities = RTCRtpReceiver.getCapabilities(transceiver.kind)
    assert capabilities is not None
    transceiver.setCodecPreferences(
        [c for c in capabilities.codecs if c.mimeType.lower() in wanted]
    )


def offered_kinds(sdp: str, room_id: str, participant: str) -> list[str]:
    """Media kinds of an offer, in KINDS order; refuses anything that is not an A/V offer."""
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise BadSessionDescriptionError(f"room {room_id}: {participant} sent no SDP offer")
    try:
        description = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # the parser raises whatever a malformed line provokes
        raise BadSessionDescriptionError(
            f"room {room_id}: {participant}'s SDP offer does not parse: {exc}"
        ) from exc
    kinds = [k for k in KINDS if any(m.kind == k for m in description.media)]
    if not kinds:
        raise BadSessionDescriptionError(
            f"room {room_id}: {participant}'s SDP offer has no audio or video"
        )
    return kinds


def accept_publisher_extras(pc: RTCPeerConnection, offer_sdp: str) -> int | None:
    """What aiortc does not negotiate but the relay handles, where the offer has it.

    Call between ``setRemoteDescription`` and ``createAnswer`` of a publish connection
    (aiortc's answer is built from each transceiver's ``_codecs`` / ``_headerExtensions``):

    * transport-wide congestion control: the offer's transport-cc header extension (with
      the offer's id) and ``a=rtcp-fb:<pt> transport-cc`` for every codec that offers it
      (the relay sends the feedback, :mod:`signaling.twcc`);
    * Opus in-band FEC: ``useinbandfec=1`` in the answer's fmtp when the offer has it, so
      the browser adds FEC to its Opus frames;
    * Opus RED (RFC 2198, ``red/48000/2`` with ``fmtp <opus>/<opus>``), first in the
      answer so the browser sends it; the receiver unwraps it (``PacketSink``): the
      recorder and the subscribers get plain Opus, and a lost frame is taken from the
      next packet's redundancy.

    Returns the transport-cc extension id, or None when the offer has no transport-cc.
    """
    description = aiortc_sdp.SessionDescription.parse(offer_sdp)
    by_mid = {m.rtp.muxId: m for m in description.media}
    twcc_id: int | None = None
    for transceiver in pc.getTransceivers():
        media = by_mid.get(transceiver.mid) if transceiver.mid is not None else None
        if media is None:
            continue
        extension = next((e for e in media.rtp.headerExtensions if e.uri == TWCC_URI), None)
        if extension is not None and all(e.uri != TWCC_URI for e in transceiver._headerExtensions):
            transceiver._headerExtensions.append(extension)
        offered = {c.payloadType: c for c in media.rtp.codecs}
        for codec in transceiver._codecs:
            theirs = offered.get(codec.payloadType)
            if theirs is None:
                continue
            if extension is not None and any(f.type == "transport-cc" for f in theirs.rtcpFeedback):
                if all(f.type != "transport-cc" for f in codec.rtcpFeedback):
                    codec.rtcpFeedback.append(RTCRtcpFeedback(type="transport-cc"))
                twcc_id = extension.id
            if codec.mimeType.lower() == "audio/opus":
                if str(theirs.parameters.get("useinbandfec")) == "1":
                    codec.parameters["useinbandfec"] = 1
                red = _offered_red(media.rtp.codecs, codec.payloadType)
                if red is not None:  # first: the codec the browser then sends
                    transceiver._codecs.insert(0, red)
                    break
    return twcc_id


def _offered_red(
    codecs: list[RTCRtpCodecParameters], opus: int | None
) -> RTCRtpCodecParameters | None:
    """The offer's ``red/48000/2`` whose blocks are all our Opus payload type, if any."""
    for codec in codecs:
        if codec.mimeType.lower() != "audio/red" or codec.clockRate != 48000:
            continue
        blocks = next(iter(codec.parameters), "")
        if blocks and set(blocks.split("/")) == {str(opus)}:
            return RTCRtpCodecParameters(
                mimeType="audio/red",
                clockRate=48000,
                channels=2,
                payloadType=codec.payloadType,
                parameters=dict(codec.parameters),
                rtcpFeedback=[RTCRtcpFeedback(type="transport-cc")]
                if any(f.type == "transport-cc" for f in codec.rtcpFeedback)
                else [],
            )
    return None


async def set_remote(
    pc: RTCPeerConnection, sdp: str, kind: str, room_id: str, participant: str
) -> None:
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise BadSessionDescriptionError(f"room {room_id}: {participant} sent no SDP {kind}")
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
    except (ValueError, LookupError, TypeError) as exc:
        raise BadSessionDescriptionError(
            f"room {room_id}: {participant}'s SDP {kind} was refused: {exc}"
        ) from exc
    except Exception as exc:  # aiortc raises its own InvalidStateError/OperationError
        if type(exc).__module__.startswith("aiortc"):
            raise BadSessionDescriptionError(
                f"room {room_id}: {participant}'s SDP {kind} was refused: {exc}"
            ) from exc
        raise


async def set_local(
    pc: RTCPeerConnection,
    description: RTCSessionDescription,
    host_addresses: Sequence[str] | None,
) -> None:
    # aiortc gathers candidates inside setLocalDescription (half-trickle).
    with gather_on(host_addresses):
        await pc.setLocalDescription(description)
