"""Evidence errors: one tree, each mapped to an HTTP status by the error middleware.

    EvidenceError
    ├── NoVideoError            409  nothing to snapshot (no packets, no keyframe yet)
    ├── SnapshotDecodeError     422  packets arrived but no frame decodes from them
    ├── InvalidLocationError    422  latitude/longitude/accuracy out of range
    ├── InvalidAnnotationError  422  a shape that cannot be drawn on this image
    ├── BundleError             422  an export bundle that cannot even be read
    └── RecordTamperedError     409  a side row differs from the chain: not acted on

Messages are English msgids; the middleware translates them (``evidence.po``).
"""

from __future__ import annotations

from server.errors import YunkanError


class EvidenceError(YunkanError):
    status = 400
    code = "evidence_error"
    message = "The evidence request could not be processed"


class NoVideoError(EvidenceError):
    """Asked for a frame of a participant that has sent no decodable video."""

    status = 409
    code = "no_video"
    message = "No video is flowing from this participant; a snapshot needs live video"


class SnapshotDecodeError(EvidenceError):
    status = 422
    code = "snapshot_undecodable"
    message = "The video stream could not be decoded into a picture"


class InvalidLocationError(EvidenceError):
    status = 422
    code = "invalid_location"
    message = "The location is not a valid position"


class InvalidAnnotationError(EvidenceError):
    status = 422
    code = "invalid_annotation"
    message = "The annotation cannot be drawn on this snapshot"


class BundleError(EvidenceError):
    status = 422
    code = "bad_bundle"
    message = "The file is not a readable case bundle"


class RecordTamperedError(EvidenceError):
    """The decision row the procedure would act on is not the one the chain records."""

    status = 409
    code = "record_tampered"
    message = (
        "The decision in the database differs from the case record (event %(seq)s); "
        "nothing was changed, run verify"
    )
