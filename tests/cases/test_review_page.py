"""The internal review page, the case header and the applicant's rectification upload."""

from __future__ import annotations

import io

from aiohttp import FormData
from PIL import Image

from server.appkeys import DB
from server.cases.models import Case
from tests.cases.conftest import Client
from tests.cases.test_procedure import _case, _matter, _qualify, _user_id
from tests.support import applicant_headers, staff_headers

ZH = {"Accept-Language": "zh-CN"}
CHECKLIST = [{"key": "store", "text": "仓储条件"}]


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


async def _head(client: Client, case_id: int) -> int:
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        return case.head_seq


async def _post(client: Client, path: str, data: object, headers: dict[str, str]) -> object:
    return await client.post(path, data=data, headers={**headers, **ZH}, allow_redirects=False)


async def test_review_page_is_for_the_named_reviewer(client: Client) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    li_h = await staff_headers(client, "li", "inspector")
    boss_h = await staff_headers(client, "boss", "supervisor")
    lead, li = await _user_id(client, "wang"), await _user_id(client, "li")
    matter_id = await _matter(client, internal_review=True, checklist=CHECKLIST)
    await _qualify(client, [lead, li], matter_id)
    case_id = await _case(client, matter_id, lead, "13900139020")
    review = f"/staff/cases/{case_id}/review"

    r = await _post(client, f"/cases/{case_id}/step/checklist", {"result-0": "problem"}, lead_h)
    assert r.status == 303  # type: ignore[attr-defined]
    form = {
        "outcome": "rectify",
        "reason": "未配备温湿度记录设备",
        "requirements": "加装温湿度记录仪",
        "rectify_days": "5",
        "reviewer_id": str(li),
    }
    r = await _post(client, f"/cases/{case_id}/step/decide", form, lead_h)
    assert r.status == 303  # type: ignore[attr-defined]

    listing = await (await client.get("/staff/cases", headers={**li_h, **ZH})).text()
    assert f'href="{review}"' in listing
    case_page = await (await client.get(f"/staff/cases/{case_id}", headers={**li_h, **ZH})).text()
    assert 'id="open-review"' in case_page
    lead_page = await client.get(f"/staff/cases/{case_id}", headers={**lead_h, **ZH})
    assert 'id="open-review"' not in await lead_page.text()

    page = await client.get(review, headers={**li_h, **ZH})
    text = await page.text()
    assert page.status == 200
    for part in ("review-evidence", "review-checklist", "review-decision", "step-review"):
        assert part in text, part
    assert "仓储条件" in text and "未配备温湿度记录设备" in text and "加装温湿度记录仪" in text
    assert "拟定结论" in text and "内部审核" in text
    # The inspector who drafted it and an overseeing supervisor may read the case, not this.
    assert (await client.get(review, headers={**lead_h, **ZH})).status == 403
    assert (await client.get(review, headers={**boss_h, **ZH})).status == 403
    outsider_h = await staff_headers(client, "zhao", "inspector")
    assert (await client.get(review, headers={**outsider_h, **ZH})).status == 404

    # Returning needs a comment; with it the case goes back to the inspector.
    before = await _head(client, case_id)
    r = await _post(client, f"/cases/{case_id}/step/review", {"decision": "return"}, li_h)
    assert r.status == 422 and await _head(client, case_id) == before  # type: ignore[attr-defined]
    r = await _post(
        client,
        f"/cases/{case_id}/step/review",
        {"decision": "return", "note": "请补充仓库照片"},
        li_h,
    )
    assert r.status == 303  # type: ignore[attr-defined]
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None and case.status == "inspecting"
    again = await (await client.get(review, headers={**li_h, **ZH})).text()
    assert "step-review" not in again and "目前没有待您审核的结论" in again


async def test_rectification_upload_is_hashed_into_the_case(client: Client) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    lead = await _user_id(client, "wang")
    mobile = "13900139021"
    applicant_h = await applicant_headers(client, mobile)
    matter_id = await _matter(client, internal_review=False, checklist=CHECKLIST)
    await _qualify(client, [lead], matter_id)
    case_id = await _case(client, matter_id, lead, mobile)
    upload = f"/cases/{case_id}/rectification"

    def files(*parts: tuple[str, bytes, str]) -> FormData:
        data = FormData()
        data.add_field("note", "已加装记录仪")
        for name, body, mime in parts:
            data.add_field("file", body, filename=name, content_type=mime)
        return data

    # Not while inspecting: the state is named, nothing changes.
    before = await _head(client, case_id)
    r = await _post(client, upload, files(("a.jpg", _jpeg(), "image/jpeg")), applicant_h)
    assert r.status == 409  # type: ignore[attr-defined]
    assert await _head(client, case_id) == before

    await _post(client, f"/cases/{case_id}/step/checklist", {"result-0": "problem"}, lead_h)
    r = await _post(
        client,
        f"/cases/{case_id}/step/decide",
        {"outcome": "rectify", "reason": "无记录仪", "requirements": "加装记录仪"},
        lead_h,
    )
    assert r.status == 303  # type: ignore[attr-defined]
    mine = await (await client.get(f"/me/cases/{case_id}", headers={**applicant_h, **ZH})).text()
    assert 'id="rectification-form"' in mine and 'capture="environment"' in mine
    assert 'accept="image/*,video/*"' in mine and "book-reinspection" in mine

    # A page disguised as a photo is refused by its bytes, with a message; nothing changes.
    before = await _head(client, case_id)
    fake = b"<html><script>alert(1)</script></html>"
    r = await _post(client, upload, files(("x.jpg", fake, "image/jpeg")), applicant_h)
    assert r.status == 422  # type: ignore[attr-defined]
    assert "只能上传照片" in await r.text()  # type: ignore[attr-defined]
    r = await _post(client, upload, files(), applicant_h)
    assert r.status == 422 and "请至少选择" in await r.text()  # type: ignore[attr-defined]
    assert await _head(client, case_id) == before
    # The staff may not upload in the applicant's name.
    r = await _post(client, upload, files(("a.jpg", _jpeg(), "image/jpeg")), lead_h)
    assert r.status == 403  # type: ignore[attr-defined]

    photo = _jpeg()
    webm = b"\x1a\x45\xdf\xa3" + b"\x00" * 200
    r = await _post(
        client,
        upload,
        files(("store.jpg", photo, "image/jpeg"), ("walk.webm", webm, "video/webm")),
        applicant_h,
    )
    assert r.status == 303, await r.text()  # type: ignore[attr-defined]
    assert await _head(client, case_id) == before + 2
    seq = before + 1
    got = await client.get(f"/cases/{case_id}/uploads/{seq}", headers=applicant_h)
    assert got.status == 200 and await got.read() == photo
    assert got.headers["Content-Type"] == "image/jpeg"
    ranged = await client.get(
        f"/cases/{case_id}/uploads/{seq + 1}", headers={**lead_h, "Range": "bytes=0-3"}
    )
    assert ranged.status == 206 and await ranged.read() == webm[:4]
    assert ranged.headers["X-Content-Type-Options"] == "nosniff"
    other_h = await applicant_headers(client, "13900139022")
    assert (await client.get(f"/cases/{case_id}/uploads/{seq}", headers=other_h)).status == 404
    # Only uploads are served by this route, not other events' blobs.
    assert (await client.get(f"/cases/{case_id}/uploads/1", headers=lead_h)).status == 404

    staff_page = await client.get(f"/staff/cases/{case_id}", headers={**lead_h, **ZH})
    text = await staff_page.text()
    assert f"/cases/{case_id}/uploads/{seq}" in text and "<video" in text
    assert "张小明 上传了整改材料：store.jpg" in text or "上传了整改材料：store.jpg" in text
    report = await (await client.get(f"/api/v1/cases/{case_id}/verify", headers=lead_h)).json()
    assert report["ok"], report


async def test_case_header_states_the_facts(client: Client) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    lead = await _user_id(client, "wang")
    matter_id = await _matter(client, internal_review=False, checklist=CHECKLIST)
    case_id = await _case(client, matter_id, lead, "13900139023")
    r = await client.put(
        f"/api/v1/cases/{case_id}/site",
        json={"address": "沙河镇工业园 3 号", "lat": 26.0, "lon": 119.3, "threshold_m": 500},
        headers=lead_h,
    )
    assert r.status in (200, 204), await r.text()
    applicant_h = await applicant_headers(client, "13900139023")
    r = await client.post(
        f"/api/v1/cases/{case_id}/location",
        json={"lat": 26.01, "lon": 119.3, "accuracy": 10},
        headers=applicant_h,
    )
    assert r.status in (200, 201), await r.text()
    page = await (await client.get(f"/staff/cases/{case_id}", headers={**lead_h, **ZH})).text()
    assert "种子生产经营许可变更" in page and "市场监管局" in page
    assert "沙河镇工业园 3 号" in page and "张小明" in page and "139****9023" in page
    assert "最近共享位置距现场 1112 米" in page and "超出距离阈值" in page
    mine = await (await client.get(f"/me/cases/{case_id}", headers={**applicant_h, **ZH})).text()
    assert "沙河镇工业园 3 号" in mine and 'id="distance-check"' not in mine
