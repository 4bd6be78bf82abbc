"""PAdES B-T / B-LT seals against a real local PKI (certomancer: TSA, OCSP, CRL over
HTTP), checked by pyHanko and by poppler's pdfsig + openssl as independent validators;
and the visible 电子印章 on the last page."""

from __future__ import annotations

import dataclasses
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar
from asn1crypto import cms
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from recordings import checkpoints
from recordings.checkpoints import CaseCheckpoint
from server.accounts.principal import Principal
from server.app import create_app
from server.appkeys import DB
from server.cases import procedure
from server.cases.models import Case
from server.letters import pdf, pki, sealing, verification
from server.letters.appkeys import LETTERS
from server.settings import Settings
from tests.letters.flow import make_world
from tests.letters.sample import sample_document
from tests.letters.test_api import FIELDS, issue, verify_upload
from tests.pki_services import AGENCY, LocalPki

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def sample_pdf() -> bytes:
    return pdf.render_sync(sample_document())


@pytest.fixture(scope="module")
def local_pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPki]:
    with LocalPki(tmp_path_factory.mktemp("pki")) as services:
        yield services


@pytest.fixture(scope="module")
def material(local_pki: LocalPki) -> pki.SealMaterial:
    loaded = pki.load_or_create(
        Path("unused"), p12_path=local_pki.p12_path, ca_path=local_pki.ca_pem_path
    )
    return loaded.configured(tsa_url=local_pki.tsa_url, agency_name=AGENCY)


@pytest.fixture(scope="module")
def sealed(material: pki.SealMaterial, local_pki: LocalPki) -> bytes:
    before = local_pki.requests
    data = sealing.seal_sync(sample_pdf(), material, location=AGENCY).data
    # the signature timestamp, then revocation data for the seal (OCSP or CRL) and the TSA
    assert local_pki.requests - before >= 2
    return data


def test_pyhanko_reports_b_lt(sealed: bytes, material: pki.SealMaterial) -> None:
    verdict = verification.verify_sync(sealed, material)
    assert verdict.valid and verdict.intact and verdict.trusted and verdict.unmodified
    assert verdict.timestamp is not None and verdict.long_term
    dss = PdfFileReader(io.BytesIO(sealed)).root["/DSS"]
    assert len(dss["/Certs"]) >= 2  # seal and TSA chains
    assert len(dss.get("/OCSPs", [])) + len(dss.get("/CRLs", [])) >= 1


def test_pdfsig_and_openssl_accept_it(sealed: bytes, tmp_path: Path) -> None:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    out = subprocess.run(
        ["pdfsig", "-nocert", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "Signature Validation: Signature is Valid." in out
    assert "ETSI.CAdES.detached" in out
    subprocess.run(["pdfsig", "-dump", str(path)], cwd=tmp_path, capture_output=True, check=True)
    # pdfsig (poppler 22) does not print the timestamp; it dumps the CMS blob it checked,
    # and openssl reads the signature timestamp out of it.
    blob = (tmp_path / "sealed.pdf.sig0").read_bytes()
    signer = cms.ContentInfo.load(blob)["content"]["signer_infos"][0]
    token = next(
        a["values"][0]
        for a in signer["unsigned_attrs"]
        if a["type"].native == "signature_time_stamp_token"
    )
    (tmp_path / "token.der").write_bytes(token.dump())
    text = subprocess.run(
        ["openssl", "ts", "-reply", "-token_in", "-in", "token.der", "-text"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Time stamp:" in text and "Yunkan Test TSA" in text


def test_changes_beyond_the_dss_are_still_caught(sealed: bytes, material: pki.SealMaterial) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed))
    writer.root["/Lang"] = generic.TextStringObject("en")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    verdict = verification.verify_sync(out.getvalue(), material)
    assert not verdict.valid and verdict.problem == "modified_after_sealing"


def test_without_a_tsa_the_seal_stays_b_b(material: pki.SealMaterial) -> None:
    plain = material.configured(tsa_url="", agency_name=AGENCY)
    verdict = verification.verify_sync(sealing.seal_sync(sample_pdf(), plain).data, plain)
    assert verdict.valid and verdict.timestamp is None and not verdict.long_term


def _red(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    r, g, b = (
        band.point(lambda v, t=t: 255 if v > t else 0)
        for band, t in zip(image.convert("RGB").crop(box).split(), (150, 90, 90), strict=True)
    )
    from PIL import ImageChops

    red = ImageChops.multiply(r, ImageChops.invert(ImageChops.lighter(g, b)))
    return sum(1 for v in red.tobytes() if v)


def test_visible_seal_on_the_last_page(sealed: bytes, tmp_path: Path) -> None:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    pages = int(
        next(
            line.split()[-1]
            for line in subprocess.run(
                ["pdfinfo", str(path)], capture_output=True, text=True, check=True
            ).stdout.splitlines()
            if line.startswith("Pages:")
        )
    )
    subprocess.run(["pdftoppm", "-r", "72", "-png", str(path), str(tmp_path / "p")], check=True)
    names = sorted(tmp_path.glob("p-*.png"))
    assert len(names) == pages
    last = Image.open(names[-1])
    x1, y1, x2, y2 = sealing.SEAL_BOX  # PDF points, origin bottom left; 72 dpi = 1 px/pt
    height = last.height
    box = (x1, height - y2, x2, height - y1)
    assert _red(last, box) > 600  # ring, star and name in seal red
    assert _red(Image.open(names[0]), box) < 50 or pages == 1


async def test_configured_deployment_seals_b_lt_and_stamps_checkpoints(
    aiohttp_client: Any, sqlite_settings: Settings, local_pki: LocalPki
) -> None:
    """YUNKAN_SEAL_P12 / YUNKAN_SEAL_CA / YUNKAN_TSA_URL end to end through the app."""
    settings = dataclasses.replace(
        sqlite_settings,
        seal_p12=str(local_pki.p12_path),
        seal_ca=str(local_pki.ca_pem_path),
        tsa_url=local_pki.tsa_url,
        background_tasks=False,
    )
    client = await aiohttp_client(create_app(settings), cookie_jar=DummyCookieJar())
    world = await make_world(client)
    letter = await issue(client, world, {"kind": "commitment", "fields": FIELDS})
    response = await client.get(
        f"/api/v1/letters/{letter['id']}/pdf", headers=world.inspector.headers
    )
    verdict = await (await verify_upload(client, await response.read())).json()
    assert verdict["valid"] and verdict["timestamp"] and verdict["long_term"]
    assert verdict["certificate"].startswith("Common Name: 云勘测试中心 Document Seal")

    # a state change is signed in its transaction; the TSA token is added after commit
    async with client.app[DB].begin() as session:
        case = await session.get(Case, world.case_id)
        assert case is not None
        staff = Principal(kind="staff", id=world.inspector.id, role="inspector", name="李娜")
        await procedure.cancel(session, case, staff, "测试：撤销")
    signer = client.app[LETTERS].seal.checkpoint_signer()
    assert await checkpoints.stamp_pending(client.app[DB], signer) >= 1
    async with client.app[DB]() as session:
        rows = list(await session.scalars(select(CaseCheckpoint)))
    assert rows and all(r.timestamp_token for r in rows)
    response = await client.get(
        f"/api/v1/cases/{world.case_id}/verify", headers=world.inspector.headers
    )
    body = await response.json()
    assert body["ok"] is True, body
