"""The whole flow over HTTP against the real app (SQLite and PostgreSQL): issue, sign,
PDF, verify, and every refusal leaving the database exactly as it was."""

from __future__ import annotations

import asyncio
import io
import subprocess
from typing import Any

import aiohttp
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import select

from server.accounts.models import SmsMessage
from server.appkeys import BLOBS, DB
from server.cases.models import Case
from server.cases.timeline import load_events, verify_case
from server.letters import pdf, sealing
from server.letters.appkeys import LETTERS
from server.letters.models import LetterEvent
from server.letters.pki import SealMaterial, generate_dev_pki, load_p12
from server.letters.verification import MAX_PDF_BYTES
from tests.letters.flow import (
    Client,
    World,
    close_case,
    data_url,
    inspected,
    make_world,
    snapshot,
)
from tests.letters.images import signature_png
from tests.letters.sample import sample_document
from tests.support import staff_headers

FIELDS = {"enterprise_name": "丰禾种业有限公司", "site_address": "余杭区仁和街道种业路 18 号"}
RECORD = {
    "kind": "record",
    "checklist": [
        {"item": "生产场所与申请材料一致", "result": "ok"},
        {"item": "种子检验室配备发芽箱", "result": "problem", "note": "未校准"},
    ],
    "outcome": "rectify",
}
"""What the inspector's screen shows, stated with the record (checked against the case)."""


async def issue(client: Client, world: World, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/cases/{world.case_id}/letters", json=body, headers=world.inspector.headers
    )
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def sign(client: Client, letter_id: int, headers: dict[str, str], **kw: Any) -> Any:
    body = {"signature": data_url(), "consent": True, **kw}
    return await client.post(f"/api/v1/letters/{letter_id}/sign", json=body, headers=headers)


async def error_code(response: aiohttp.ClientResponse, status: int) -> str:
    assert response.status == status, await response.text()
    return str((await response.json())["error"]["code"])


async def verify_upload(client: Client, data: bytes) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    # A stream, not bytes: aiohttp warns about big raw bodies and warnings are errors here.
    form.add_field("file", io.BytesIO(data), filename="letter.pdf", content_type="application/pdf")
    return await client.post("/api/v1/verify", data=form)


async def test_commitment_issue_sign_pdf_verify(client: Client) -> None:
    world = await make_world(client)
    letter = await issue(client, world, {"kind": "commitment", "fields": FIELDS})
    assert letter["status"] == "issued" and letter["your_turn"] is False
    assert "丰禾种业有限公司" in letter["body"] and world.case_number in letter["body"]
    issued_pdf_sha = letter["pdf_sha256"]

    async with client.app[DB]() as session:
        text = await session.scalar(
            select(SmsMessage.body)
            .where(SmsMessage.mobile == "13800138000", SmsMessage.kind == "letter")
            .order_by(SmsMessage.id.desc())
        )
    assert text is not None and f"/letters/{letter['id']}" in text  # told it is their turn

    seen = await client.get(f"/api/v1/letters/{letter['id']}", headers=world.applicant.headers)
    assert (await seen.json())["your_turn"] is True

    response = await sign(client, letter["id"], world.applicant.headers)
    assert response.status == 200, await response.text()
    signed = await response.json()
    assert signed["status"] == "signed" and signed["signers"][0]["signed"]
    assert signed["pdf_sha256"] != issued_pdf_sha

    response = await client.get(signed["pdf_url"], headers=world.applicant.headers)
    assert response.status == 200 and response.content_type == "application/pdf"
    data = await response.read()
    assert response.headers["X-Document-SHA256"] == signed["pdf_sha256"]

    # The audit page names the document the applicant signed and the signature's hash.
    text = await asyncio.to_thread(
        lambda: subprocess.run(
            ["pdftotext", "-", "-"], input=data, capture_output=True, check=True, timeout=30
        ).stdout.decode()
    )
    assert f"所签文件 SHA-256：{issued_pdf_sha}" in text
    assert f"签名图像 SHA-256：{signed['signers'][0]['signature_sha256']}" in text
    assert "签署审计记录" in text and "13800138000" not in text

    # pyHanko itself, against the development CA written into the data dir.
    material: SealMaterial = client.app[LETTERS].seal
    (embedded,) = PdfFileReader(io.BytesIO(data)).embedded_signatures
    status = await asyncio.to_thread(
        validate_pdf_signature,
        embedded,
        ValidationContext(trust_roots=list(material.trust_roots)),
    )
    assert status.bottom_line and status.trusted and status.docmdp_ok

    # The timeline holds every hash, and every blob it names is intact.
    async with client.app[DB]() as session:
        case = await session.get(Case, world.case_id)
        assert case is not None
        events = await load_events(session, world.case_id)
        report = await verify_case(session, case, client.app[BLOBS])
    kinds = [e.kind for e in events]
    assert kinds[-2:] == ["letter.issued", "letter.signed"]
    assert events[-2].data["pdf_sha256"] == issued_pdf_sha
    assert events[-1].data["pdf_sha256"] == signed["pdf_sha256"]
    assert events[-1].data["signature_sha256"] == signed["signers"][0]["signature_sha256"]
    assert events[-1].data["document_seen_sha256"] == issued_pdf_sha
    assert report.ok and report.blobs == 3

    # Public verification: valid, on record, who signed when.
    response = await verify_upload(client, data)
    verdict = await response.json()
    assert response.status == 200, verdict
    assert verdict["valid"] and verdict["matches_record"] and verdict["record"]["latest"]
    assert verdict["record"]["signers"][0]["name"] == "张伟"
    # The issued (unsigned) version someone kept is still recognised, as not the latest.
    older = await verify_upload(client, await _blob_for(client, issued_pdf_sha, letter["id"]))
    older_verdict = await older.json()
    assert older_verdict["valid"] and not older_verdict["record"]["latest"]

    # One changed byte anywhere: not valid.
    for position in (len(data) // 5, len(data) // 2, data.index(b"/Contents <") + 300):
        forged = bytearray(data)
        forged[position] ^= 0x01
        response = await verify_upload(client, bytes(forged))
        if response.status == 200:
            assert not (await response.json())["valid"], position
        else:
            assert response.status == 422


async def _blob_for(client: Client, sha: str, letter_id: int) -> bytes:
    async with client.app[DB]() as session:
        key = await session.scalar(
            select(LetterEvent.pdf_key).where(
                LetterEvent.letter_id == letter_id, LetterEvent.pdf_sha256 == sha
            )
        )
    assert key is not None
    data: bytes = await client.app[BLOBS].read(key)
    return data


async def test_refusals_change_nothing(client: Client) -> None:
    world = await make_world(client)
    letter = await issue(client, world, {"kind": "commitment", "fields": FIELDS})
    url = f"/api/v1/letters/{letter['id']}"
    before = await snapshot(client, world.case_id)

    # Someone else's letter: not even visible.
    assert await error_code(await sign(client, letter["id"], world.stranger.headers), 404) == (
        "letter_not_found"
    )
    assert await error_code(await client.get(url, headers=world.stranger.headers), 404) == (
        "letter_not_found"
    )
    # A party who is not a signer.
    response = await sign(client, letter["id"], world.inspector.headers)
    assert await error_code(response, 403) == "not_a_signer"
    # Bad images and no consent.
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"signature": "data:image/png;base64,aGVsbG8="}, 422, "signature_invalid"),
        ({"signature": "data:image/gif;base64,R0lGODlh"}, 422, "signature_invalid"),
        ({"signature": data_url(signature_png(ink=False))}, 422, "signature_empty"),
        ({"signature": data_url(signature_png(size=(4000, 200)))}, 413, "signature_too_large"),
        ({"consent": False}, 422, "consent_required"),
        ({"signature": "x" * 900_000}, 422, "validation_failed"),
    ]
    for body, status, code in cases:
        response = await sign(client, letter["id"], world.applicant.headers, **body)
        assert await error_code(response, status) == code, body
    assert await snapshot(client, world.case_id) == before

    # Sign once; the second time is refused and nothing moves.
    assert (await sign(client, letter["id"], world.applicant.headers)).status == 200
    after_sign = await snapshot(client, world.case_id)
    response = await sign(client, letter["id"], world.applicant.headers)
    assert await error_code(response, 409) == "letter_already_signed"
    assert await snapshot(client, world.case_id) == after_sign

    # A letter replaced by a correction before it was signed cannot be signed any more.
    draft = await issue(client, world, {"kind": "commitment"})
    second = await issue(
        client, world, {"kind": "commitment", "fields": FIELDS, "supersedes": draft["id"]}
    )
    replaced = await snapshot(client, world.case_id)
    response = await sign(client, draft["id"], world.applicant.headers)
    assert await error_code(response, 409) == "letter_superseded"
    assert await snapshot(client, world.case_id) == replaced

    # A closed case: no new letters, no signatures.
    await close_case(client, world.case_id)
    closed = await snapshot(client, world.case_id)
    response = await client.post(
        f"/api/v1/cases/{world.case_id}/letters",
        json={"kind": "commitment"},
        headers=world.inspector.headers,
    )
    assert await error_code(response, 409) == "case_closed"
    response = await sign(client, second["id"], world.applicant.headers)
    assert await error_code(response, 409) == "case_closed"
    assert await snapshot(client, world.case_id) == closed


async def test_concurrent_signing_yields_one_signature(client: Client) -> None:
    world = await make_world(client)
    letter = await issue(client, world, {"kind": "commitment"})
    responses = await asyncio.gather(
        *(sign(client, letter["id"], world.applicant.headers) for _ in range(3))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 409, 409], statuses
    state = await snapshot(client, world.case_id)
    assert state["signatures"] == 1
    async with client.app[DB]() as session:
        events = await load_events(session, world.case_id)
    assert [e.kind for e in events].count("letter.signed") == 1


async def test_record_signed_in_order_then_corrected(client: Client) -> None:
    world = await make_world(client)
    await inspected(client, world)
    record = await issue(client, world, RECORD)
    assert [s["role"] for s in record["signers"]] == ["inspector", "inspector", "applicant"]
    assert record["open_for_signing"] and record["waiting_for"] == "李娜"
    assert "二、勘验结论：限期整改" in record["body"]
    rid = record["id"]
    # Out of order: the applicant before the inspectors, the co-inspector before the lead.
    before = await snapshot(client, world.case_id)
    response = await sign(client, rid, world.applicant.headers)
    assert await error_code(response, 409) == "not_your_turn"
    response = await sign(client, rid, world.second_inspector.headers)
    assert await error_code(response, 409) == "not_your_turn"
    assert await snapshot(client, world.case_id) == before
    assert (await sign(client, rid, world.inspector.headers)).status == 200
    # The same person twice.
    response = await sign(client, rid, world.inspector.headers)
    assert await error_code(response, 409) == "letter_already_signed"

    # A correction (a new version) supersedes the half-signed record: only it can be signed.
    correction = await issue(client, world, {"kind": "record", "remark": "更正：补充定位说明"})
    assert correction["version"] == 2 and correction["supersedes_id"] == rid
    old = await (await client.get(f"/api/v1/letters/{rid}", headers=world.applicant.headers)).json()
    assert old["status"] == "superseded" and old["superseded_by_id"] == correction["id"]
    assert not old["open_for_signing"] and old["signers"][0]["signed"]  # kept as it was
    replaced = await snapshot(client, world.case_id)
    response = await sign(client, rid, world.second_inspector.headers)
    assert await error_code(response, 409) == "letter_superseded"
    assert await snapshot(client, world.case_id) == replaced
    async with client.app[DB]() as session:
        events = await load_events(session, world.case_id)
    superseded = [e for e in events if e.kind == "letter.superseded"]
    assert len(superseded) == 1 and superseded[0].data["letter_id"] == rid
    assert superseded[0].data["superseded_by"] == correction["id"]
    assert [e.kind for e in events[-2:]] == ["letter.issued", "letter.superseded"]

    cid = correction["id"]
    for party in (world.inspector, world.second_inspector, world.applicant):
        response = await sign(client, cid, party.headers)
        assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "signed"
    # Naming a version that is not the newest is refused.
    response = await client.post(
        f"/api/v1/cases/{world.case_id}/letters",
        json={**RECORD, "supersedes": rid},
        headers=world.inspector.headers,
    )
    assert await error_code(response, 409) == "letter_state"
    listing = await client.get(
        f"/api/v1/cases/{world.case_id}/letters", headers=world.applicant.headers
    )
    assert [x["version"] for x in (await listing.json())["letters"]] == [1, 2]
    async with client.app[DB]() as session:
        kinds = [e.kind for e in await load_events(session, world.case_id)]
    assert kinds.count("letter.signed") == 4 and kinds.count("letter.issued") == 2


async def test_forged_verification_uploads(sqlite_client: Client) -> None:
    client = sqlite_client
    _ca, other_p12 = generate_dev_pki("Another Agency")
    foreign = await sealing.seal(pdf.render_sync(sample_document()), load_p12(other_p12, None))
    response = await verify_upload(client, foreign.data)
    verdict = await response.json()
    assert response.status == 200
    assert not verdict["valid"] and not verdict["trusted"] and verdict["intact"]
    assert (
        verdict["problem"] == "untrusted_certificate" and "Another Agency" in verdict["certificate"]
    )

    # Sealed by us, but not a document we issued (a sealed letter from another deployment
    # of the same CA, or from a test): the seal is valid, the record does not match.
    ours = await sealing.seal(pdf.render_sync(sample_document()), client.app[LETTERS].seal)
    verdict = await (await verify_upload(client, ours.data)).json()
    assert verdict["seal_valid"] and not verdict["matches_record"] and not verdict["valid"]

    assert await error_code(await verify_upload(client, b"GIF89a not a pdf"), 422) == "not_a_pdf"
    truncated = ours.data[: len(ours.data) // 2]
    assert await error_code(await verify_upload(client, truncated), 422) == "pdf_damaged"
    unsigned = pdf.render_sync(sample_document())
    assert await error_code(await verify_upload(client, unsigned), 422) == "pdf_unsigned"
    huge = b"%PDF-1.7\n" + b"0" * (MAX_PDF_BYTES + 10)
    assert await error_code(await verify_upload(client, huge), 413) == "pdf_too_large"
    raw = await client.post(
        "/api/v1/verify", data=io.BytesIO(huge), headers={"Content-Type": "application/pdf"}
    )
    assert await error_code(raw, 413) == "pdf_too_large"


async def test_template_editor_api(sqlite_client: Client) -> None:
    client = sqlite_client
    world = await make_world(client)
    admin = await staff_headers(client, "admin1", role="admin")
    response = await client.post(
        "/api/v1/letter-templates/preview",
        json={"source": "第一行\n{{ applicant_nmae }}"},
        headers=admin,
    )
    preview = await response.json()
    assert preview["text"] is None and preview["problem"]["line"] == 2
    response = await client.put(
        "/api/v1/letter-templates/0",
        json={"title": "承诺书", "source": "{% if %}"},
        headers=admin,
    )
    assert await error_code(response, 422) == "template_error"
    assert (await response.json())["error"]["details"]["line"] == 1
    assert "模板第 1 行" in (await response.json())["error"]["message"]
    response = await client.put(
        "/api/v1/letter-templates/0",
        json={"title": "自定义承诺书", "source": "本人{{ applicant_name }}承诺：{{ case_number }}"},
        headers=admin,
    )
    assert response.status == 200, await response.text()
    forbidden = await client.put(
        "/api/v1/letter-templates/0",
        json={"title": "x", "source": "x"},
        headers=world.inspector.headers,
    )
    assert forbidden.status == 403
    letter = await issue(client, world, {"kind": "commitment"})
    assert letter["title"] == "自定义承诺书"
    assert letter["body"] == f"本人张伟承诺：{world.case_number}\n"
