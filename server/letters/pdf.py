"""Rendering a letter or inspection record to PDF (fpdf2, embedded CJK font subset).

One layout for both kinds: a header with the agency and case number, the text, a
signature block per required signer (the image they drew, name, role, time in the
agency's zone — or "awaiting signature"), a QR code for the verification page, and an
appended audit page listing every event with time, IP, user agent and document hash,
as DocuSeal's certificate or Documenso's signing certificate do.

The PDF is rendered again after every signature and sealed each time (see
``sealing``), so every version a signer saw is itself a verifiable document.

fpdf2 parses and subsets the font on each render (~0.3 s for Noto Sans CJK on this
machine); ``render`` runs in a worker thread so the event loop is not blocked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import qrcode
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import TTFFont

from server.fonts import find_cjk_font
from server.letters.linebreak import wrap

FONT = "cjk"
SIGNATURE_BOX_MM = (60.0, 24.0)  # width, height of each signature image area


@dataclass(frozen=True, slots=True)
class SignerBlock:
    name: str
    role: str  # already a display label, e.g. "申请人" / "勘验人员"
    signed_at: dt.datetime | None = None  # None: awaiting signature
    png: bytes | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: dt.datetime
    action: str  # display label
    actor: str
    ip: str | None = None
    user_agent: str | None = None
    sha256: str | None = None
    sha256_label: str = "SHA-256"  # what ``sha256`` is the hash of
    document_sha256: str | None = None  # the sealed PDF the actor acted on


@dataclass(frozen=True, slots=True)
class LetterDocument:
    title: str
    body: str
    case_number: str
    reference: str  # e.g. "YK-20261201-0001 / 承诺书 第1版 / #12"
    agency_name: str
    verify_url: str
    timezone: str
    issued_at: dt.datetime
    body_sha256: str
    signers: Sequence[SignerBlock] = ()
    audit: Sequence[AuditEntry] = field(default_factory=tuple)


def _local(value: dt.datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


class _Pdf(FPDF):
    def __init__(self, doc: LetterDocument) -> None:
        super().__init__(format="A4")
        self.doc = doc
        font = find_cjk_font()
        self.add_font(FONT, "", str(font.path), collection_font_number=font.index)
        # fontTools recomputes every kept glyph's bounding box when it writes the subset
        # (running each CFF charstring): a third of the render time. The full font's boxes
        # are correct, if generous, for the subset, so keep them.
        parsed = self.fonts[FONT]
        if isinstance(parsed, TTFFont):
            parsed.ttfont.recalcBBoxes = False
        self.set_auto_page_break(auto=True, margin=22)
        self.set_margins(20, 22, 20)
        self.set_title(doc.title)
        self.set_author(doc.agency_name)
        self.set_creator("Yunkan")
        self.set_creation_date(doc.issued_at)

    def header(self) -> None:
        self.set_font(FONT, size=8)
        self.set_text_color(110)
        self.set_y(10)
        self.cell(0, 5, self.doc.agency_name, new_x=XPos.LMARGIN)
        self.cell(0, 5, f"案件编号 {self.doc.case_number}", align="R")
        self.set_text_color(0)
        self.set_y(22)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(FONT, size=7)
        self.set_text_color(110)
        self.cell(0, 4, self.doc.reference, new_x=XPos.LMARGIN)
        self.cell(0, 4, f"第 {self.page_no()} / {{nb}} 页", align="R")
        self.set_text_color(0)


def _qr_png(url: str) -> bytes:
    image = qrcode.make(url, box_size=4, border=1)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()


def _signature_blocks(pdf: _Pdf, doc: LetterDocument, zone: ZoneInfo) -> None:
    width, height = SIGNATURE_BOX_MM
    for block in doc.signers:
        if pdf.get_y() + height + 20 > pdf.h - pdf.b_margin:
            pdf.add_page()
        x = pdf.l_margin
        pdf.set_font(FONT, size=10)
        pdf.cell(0, 6, f"{block.role}（签名）：", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        top = pdf.get_y()
        if block.png is not None:
            pdf.image(
                io.BytesIO(block.png), x=x + 2, y=top, w=width, h=height, keep_aspect_ratio=True
            )
        else:
            pdf.set_draw_color(180)
            pdf.set_dash_pattern(dash=1, gap=1)
            pdf.rect(x + 2, top, width, height)
            pdf.set_dash_pattern()
            pdf.set_xy(x + 2, top + height / 2 - 3)
            pdf.set_text_color(150)
            pdf.cell(width, 6, "待签署", align="C")
            pdf.set_text_color(0)
        pdf.set_xy(x + width + 8, top + 4)
        pdf.set_font(FONT, size=9)
        lines = [f"姓名：{block.name}", f"身份：{block.role}"]
        if block.signed_at is not None:
            lines.append(f"签署时间：{_local(block.signed_at, zone)}（{doc.timezone}）")
        for line in lines:
            pdf.set_x(x + width + 8)
            pdf.cell(0, 5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_y(max(pdf.get_y(), top + height) + 6)


def _audit_page(pdf: _Pdf, doc: LetterDocument, zone: ZoneInfo) -> None:
    pdf.add_page()
    pdf.set_font(FONT, size=14)
    pdf.cell(0, 10, "签署审计记录", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=8)
    pdf.multi_cell(
        0,
        4.5,
        f"文件：{doc.title}\n编号：{doc.reference}\n正文 SHA-256：{doc.body_sha256}\n"
        f"时区：{doc.timezone}。本文件由{doc.agency_name}以数字证书签章；"
        f"任何改动都会使签章失效。核验地址：{doc.verify_url}",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(3)
    for entry in doc.audit:
        if pdf.get_y() + 24 > pdf.h - pdf.b_margin:
            pdf.add_page()
        pdf.set_draw_color(200)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(1)
        pdf.set_font(FONT, size=9)
        pdf.cell(
            0,
            5,
            f"{_local(entry.at, zone)}  {entry.action}  {entry.actor}",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.set_font(FONT, size=7)
        details = []
        if entry.ip:
            details.append(f"IP：{entry.ip}")
        if entry.user_agent:
            details.append(f"设备：{entry.user_agent[:160]}")
        if entry.sha256:
            details.append(f"{entry.sha256_label}：{entry.sha256}")
        if entry.document_sha256:
            details.append(f"所签文件 SHA-256：{entry.document_sha256}")
        if details:
            pdf.multi_cell(0, 3.8, "\n".join(details), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.5)


def render_sync(doc: LetterDocument) -> bytes:
    """The unsigned PDF bytes of ``doc``; blocking (font subsetting is CPU work)."""
    zone = ZoneInfo(doc.timezone)
    pdf = _Pdf(doc)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font(FONT, size=18)
    pdf.cell(0, 12, doc.title, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    pdf.set_font(FONT, size=11)
    for line in wrap(doc.body.rstrip("\n"), pdf.epw, pdf.get_string_width):
        pdf.cell(0, 7, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)
    _signature_blocks(pdf, doc, zone)
    # The QR code goes below the signatures, with the issue time beside it.
    if pdf.get_y() + 32 > pdf.h - pdf.b_margin:
        pdf.add_page()
    top = pdf.get_y()
    pdf.image(io.BytesIO(_qr_png(doc.verify_url)), x=pdf.l_margin, y=top, w=26, h=26)
    pdf.set_xy(pdf.l_margin + 30, top + 3)
    pdf.set_font(FONT, size=8)
    pdf.multi_cell(
        0,
        4.5,
        f"出具时间：{_local(doc.issued_at, zone)}（{doc.timezone}）\n"
        f"案件编号：{doc.case_number}\n扫码或访问以下地址核验本文件：\n{doc.verify_url}",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    _audit_page(pdf, doc, zone)
    return bytes(pdf.output())


async def render(doc: LetterDocument) -> bytes:
    return await asyncio.to_thread(render_sync, doc)
