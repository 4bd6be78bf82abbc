from __future__ import annotations

import math

import pytest

from recordings.errors import InvalidLocationError
from recordings.location import GeoFix, check_distance, haversine_m

# Tianfu Square, Chengdu, and a point about 30 km out of town.
SITE = GeoFix(30.657, 104.066)


def test_haversine_known_distances() -> None:
    # One degree of latitude is ~111.2 km on the mean sphere.
    assert math.isclose(haversine_m(GeoFix(0, 0), GeoFix(1, 0)), 111_195, rel_tol=1e-3)
    assert haversine_m(SITE, SITE) == 0
    # Symmetric, and across the antimeridian the short way round.
    a, b = GeoFix(10, 179.9), GeoFix(10, -179.9)
    assert haversine_m(a, b) == pytest.approx(haversine_m(b, a))
    assert haversine_m(a, b) < 25_000


def test_flag_above_threshold_only() -> None:
    near = GeoFix(30.6575, 104.0665, accuracy_m=15)
    far = GeoFix(30.9, 104.2, accuracy_m=15)
    near_check = check_distance(near, SITE, threshold_m=500)
    far_check = check_distance(far, SITE, threshold_m=500)
    assert near_check is not None and not near_check.flagged and near_check.distance_m < 100
    assert far_check is not None and far_check.flagged and far_check.distance_m > 25_000
    assert check_distance(far, None) is None


@pytest.mark.parametrize(
    ("lat", "lon", "acc"),
    [(91, 0, None), (0, 181, None), (math.nan, 0, None), (0, 0, -1), (0, 0, math.inf)],
)
def test_bad_fix_is_rejected(lat: float, lon: float, acc: float | None) -> None:
    with pytest.raises(InvalidLocationError):
        GeoFix(lat, lon, acc)


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threshold"):
        check_distance(SITE, SITE, threshold_m=0)


def test_label() -> None:
    assert GeoFix(30.6543219, 104.0654321, 12.4).label() == "30.65432,104.06543 ±12m"
