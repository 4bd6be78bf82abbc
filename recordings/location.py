"""Where the applicant was: a browser geolocation fix and its distance from the site.

A remote inspection is only worth something if the camera was at the site. The
applicant's page shares ``navigator.geolocation`` on request; we keep the fix with its
accuracy and compare it with the site's coordinates (when the case has them). The flag
uses the plain great-circle distance against a configurable threshold: the accuracy is
stored and shown beside it so that a reviewer can judge a borderline case, but it does not
silently widen the threshold (a phone reporting 5 km accuracy is itself worth a look).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from recordings.errors import InvalidLocationError

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG), good to ~0.5 % for haversine
DEFAULT_THRESHOLD_M = 500.0


@dataclass(frozen=True, slots=True)
class GeoFix:
    """One position report: WGS-84 degrees as the browser gives them, accuracy in metres."""

    lat: float
    lon: float
    accuracy_m: float | None = None

    def __post_init__(self) -> None:
        for value in (self.lat, self.lon):
            if not math.isfinite(value):
                raise InvalidLocationError(message="Coordinates must be finite numbers")
        if not -90.0 <= self.lat <= 90.0:
            raise InvalidLocationError(message="Latitude must be between -90 and 90")
        if not -180.0 <= self.lon <= 180.0:
            raise InvalidLocationError(message="Longitude must be between -180 and 180")
        if self.accuracy_m is not None and (
            not math.isfinite(self.accuracy_m) or self.accuracy_m < 0
        ):
            raise InvalidLocationError(message="Accuracy must be a positive number of metres")

    def label(self) -> str:
        """Short human form for watermarks and reports: ``30.65432,104.06543 ±12m``."""
        text = f"{self.lat:.5f},{self.lon:.5f}"
        if self.accuracy_m is not None:
            text += f" ±{self.accuracy_m:.0f}m"
        return text


@dataclass(frozen=True, slots=True)
class DistanceCheck:
    distance_m: float
    threshold_m: float
    flagged: bool


def haversine_m(a: GeoFix, b: GeoFix) -> float:
    """Great-circle distance in metres; accurate enough for "is it the same site"."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlmb = math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def check_distance(
    fix: GeoFix, site: GeoFix | None, threshold_m: float = DEFAULT_THRESHOLD_M
) -> DistanceCheck | None:
    """Distance from the site and whether it exceeds the threshold; ``None`` without a site."""
    if site is None:
        return None
    if not math.isfinite(threshold_m) or threshold_m <= 0:
        raise ValueError(f"distance threshold must be a positive number of metres: {threshold_m}")
    distance = haversine_m(fix, site)
    return DistanceCheck(
        distance_m=distance, threshold_m=threshold_m, flagged=distance > threshold_m
    )
