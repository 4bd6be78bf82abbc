"""The distance check uses the site coordinates given at booking when staff set none."""

from __future__ import annotations

from recordings.evidence import record_location
from recordings.location import GeoFix
from server.accounts.principal import Principal
from server.appkeys import DB
from server.booking.appointments import BookingRequest, book
from server.booking.validation import ApplicantInfo
from server.cases.models import Case
from tests.booking.support import ENTERPRISE, SH, seed_catalog
from tests.cases.conftest import Client


async def test_location_is_flagged_against_the_booked_site(client: Client) -> None:
    catalog = await seed_catalog(client.app[DB])
    async with client.app[DB].begin() as session:
        appointment = await book(
            session,
            BookingRequest(
                matter_id=catalog.small_matter_id,
                start=catalog.start("10:00"),
                applicant=ApplicantInfo(**ENTERPRISE),
                actor=None,
                site_address="某县工业园 3 号",
                site_lat=30.8,
                site_lon=103.9,
            ),
            zone=SH,
        )
        case_id = appointment.case_id
    assert case_id is not None
    applicant = Principal("applicant", appointment.applicant_id or 0, "applicant", "李四")
    async with client.app[DB].begin() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        near = await record_location(
            session, case, by=applicant, participant="p", fix=GeoFix(30.8005, 103.9)
        )
        far = await record_location(
            session, case, by=applicant, participant="p", fix=GeoFix(30.9, 103.9)
        )
    assert near.distance_m is not None and near.distance_m < 100 and not near.flagged
    assert far.flagged and far.distance_m is not None and far.distance_m > 10_000
