"""bench/sfu.py's figures from recorded rounds, and bench/pyspy_summary.py's grouping
(the parts of the Janus comparison that need neither Janus nor media)."""

from __future__ import annotations

from typing import Any

from bench._sfustats import contention_summary, quiet_summary, table
from bench.pyspy_summary import summarise


def measured(server: str, n: int, cpu: float, **extra: Any) -> dict[str, Any]:
    return {
        "server": server,
        "n": n,
        "phase": "quiet",
        "valid": True,
        "cpu_per_stream": cpu,
        "fps_min": 29.0,
        "fps_median": 30.0,
        "udp_rcvbuf_errors": 0,
        "remb_per_s": 1.0,
        "remb_min_bps": 900_000,
        "remb_median_bps": 1_000_000,
        "load_average": [1.0, 2.0],
        **extra,
    }


def test_quiet_ratio_is_of_medians_over_valid_rounds_and_adjacent_pairs() -> None:
    rounds = [
        measured("janus", 4, 0.010),
        measured("yunkan", 4, 0.020),
        measured("janus", 4, 0.012),
        # invalid: left out of the medians and of the pairs, its Janus partner waits
        measured("yunkan", 4, 0.900, valid=False, fps_min=3.0),
        measured("yunkan", 4, 0.018, load_average=[5.0, 7.5]),
        measured("janus", 4, 0.014),
        measured("yunkan", 4, 0.021, fps_min=24.5, remb_min_bps=700_000),
        measured("janus", 12, 0.010),
    ]
    row = quiet_summary(rounds)["4"]
    assert row["janus_cpu_per_stream"] == 0.012
    assert row["yunkan_cpu_per_stream"] == 0.020
    assert row["ratio"] == 1.67
    assert row["pairwise_ratios"] == [2.0, 1.5, 1.5]
    assert row["yunkan_fps_min"] == 24.5  # the lowest over valid rounds, not 3.0
    assert row["yunkan_remb_min_bps"] == 700_000
    assert row["yunkan_rounds"] == "3/4" and row["janus_rounds"] == "3/3"
    assert row["load_average"] == [1.0, 7.5]
    assert row["yunkan_fps_median_each"] == [30.0, 30.0, 30.0, 30.0]
    assert row["yunkan_udp_rcvbuf_errors_each"] == [0, 0, 0, 0]
    twelve = quiet_summary(rounds)["12"]
    assert twelve["ratio"] is None and twelve["yunkan_rounds"] == "0/0"
    assert "Yunkan / Janus CPU per stream: 1.67x" in table(quiet_summary(rounds), {})


def test_contention_counts_every_round_and_compares_remb_with_quiet() -> None:
    quiet = [
        measured("yunkan", 12, 0.02, remb_median_bps=1_000_000, remb_min_bps=950_000),
        measured("janus", 12, 0.01, remb_median_bps=2_000_000),
    ]
    hot = [
        measured(
            "yunkan",
            12,
            0.03,
            phase="contention",
            valid=False,
            fps_min=0.0,
            fps_median=4.0,
            connections_lost=5,
            slow_joins=3,
            refused=0,
            remb_median_bps=700_000,
            remb_min_bps=400_000,
            udp_rcvbuf_errors=1800,
        ),
        measured(
            "yunkan",
            12,
            0.02,
            phase="contention",
            fps_min=22.0,
            fps_median=29.0,
            connections_lost=0,
            slow_joins=0,
            refused=4,
            remb_median_bps=900_000,
        ),
        {
            "server": "yunkan",
            "n": 12,
            "phase": "contention",
            "valid": False,
            "error": "TimeoutError()",
        },
        measured("janus", 12, 0.01, phase="contention", connections_lost=0, slow_joins=0),
    ]
    c = contention_summary(quiet + hot)
    y = c["yunkan"]
    assert y["rounds"] == 3 and y["rounds_failed"] == ["TimeoutError()"]
    assert y["connections_lost"] == 5 and y["connections_lost_each"] == [5, 0, None]
    assert y["fps_min"] == 0.0 and y["fps_median"] == 16.5
    assert y["joins_over_10s"] == 3 and y["refused_at_admission"] == 4
    assert y["udp_drops_each"] == [1800, 0, None]
    assert y["remb_median_bps"] == 800_000 and y["remb_ratio_vs_quiet"] == 0.8
    assert y["remb_min_ratio_vs_quiet"] == 0.42
    assert c["janus"]["remb_ratio_vs_quiet"] == 0.5 and c["janus"]["connections_lost"] == 0


def test_profile_samples_go_to_the_innermost_group_and_idle_is_left_out() -> None:
    loop = "BaseEventLoop._run_once (asyncio/base_events.py:1922)"
    rx = f"{loop};datagram_received (signaling/receiving.py:74)"
    rx += ";PacketReceiver._start (signaling/receiving.py:90)"
    send = f"{loop};PacketSender.forward (signaling/sending.py:300)"
    send += ";DirectSend._send (signaling/sending.py:199)"
    lines = [
        f"{loop};EpollSelector.select (selectors.py:468) 500",
        "decoder_worker (aiortc/rtcrtpreceiver.py:80);get (queue.py:171) 300",
        f"{rx};Session.unprotect (pylibsrtp/__init__.py:200) 7",
        f"{rx};Session.unprotect_rtcp (pylibsrtp/__init__.py:210) 1",
        f"{send};Session.protect (pylibsrtp/__init__.py:180) 5",
        f"{send};_SelectorDatagramTransport.sendto (asyncio/selector_events.py:1200) 18",
        f"{send} 2",
        f"{rx};RTCDtlsTransport._handle_rtp_data (aiortc/rtcdtlstransport.py:560);"
        "RtpPacket.parse (aiortc/rtp.py:700) 7",
        f"{rx};RTCRtpReceiver._handle_rtp_packet (aiortc/rtcrtpreceiver.py:500);"
        "RemoteBitrateEstimator.add (aiortc/rate.py:300);RateCounter.add (aiortc/rate.py:40) 10",
        f"{loop};Handle._run (asyncio/events.py:84) 50",
    ]
    s = summarise(lines)
    assert (s["busy"], s["idle"], s["parked"]) == (100, 500, 300)
    groups = dict(s["groups"])
    assert groups["SRTP unprotect (receive)"] == 8
    assert groups["SRTP protect (send)"] == 5
    assert groups["sendto (asyncio + kernel)"] == 18
    assert (
        groups["relay: forwarding (PacketSink, Publication, PacketTrack, PacketSender, DirectSend)"]
        == 2
    )
    assert groups["RtpPacket.parse / RTCP parse"] == 7
    assert groups["REMB estimator (aiortc rate.py)"] == 10
    assert groups["asyncio event loop"] == 50
    inclusive = dict(s["inclusive"])
    assert inclusive["PacketSender.forward"] == 25 and inclusive["PacketReceiver._start"] == 25
