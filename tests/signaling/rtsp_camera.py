"""A fixed site camera for tests: an RTSP server (GStreamer's rtsp-server) on 127.0.0.1.

Run with Debian's ``/usr/bin/python3`` (``python3-gi``, ``gir1.2-gst-rtsp-server-1.0``,
``gstreamer1.0-plugins-good``; ``.ci/run`` installs them), not the project's venv::

    /usr/bin/python3 tests/signaling/rtsp_camera.py PORT

It serves ``rtsp://127.0.0.1:PORT/cam``: 640x480 SMPTE colour bars at 15 fps as Motion
JPEG over RTP (RFC 2435), what many IP cameras offer, and prints ``ready`` once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern=smpte "
    "! video/x-raw,format=I420,width=640,height=480,framerate=15/1 "
    "! jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26 )"
)


def main() -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit("could not listen")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
