"""A realistic letter document for the PDF, sealing and benchmark code."""

from __future__ import annotations

import datetime as dt
import hashlib

from server.letters import pdf, templates
from tests.letters.images import signature_png

BODY_TEMPLATE = """本人{{ applicant_name }}作为{{ enterprise_name }}\
（统一社会信用代码 {{ credit_code }}）的代表，就{{ matter_title }}事项郑重承诺：

一、视频勘验中展示的生产场所、检验室和设备均位于{{ site_address }}，为本企业实际使用。
二、所提交的材料真实、合法、有效，如有虚假，愿承担相应法律责任。
三、许可后持续符合审批条件，接受监管部门的监督检查。

承诺人：{{ applicant_name }}
{{ inspection_date }}"""


def sample_document(*, signed: bool = True) -> pdf.LetterDocument:
    now = dt.datetime(2026, 12, 1, 1, 42, 5, tzinfo=dt.UTC)
    body = templates.render(BODY_TEMPLATE, templates.SAMPLE_FIELDS)
    digest = hashlib.sha256(body.encode()).hexdigest()
    return pdf.LetterDocument(
        title="告知承诺书",
        body=body,
        case_number="YK-20261201-0001",
        reference="YK-20261201-0001 / 承诺书 第1版 / #1",
        agency_name="云勘市行政审批局",
        verify_url="http://127.0.0.1:8080/verify?letter=1",
        timezone="Asia/Shanghai",
        issued_at=now,
        body_sha256=digest,
        signers=[
            pdf.SignerBlock(
                "张伟", "申请人", now if signed else None, signature_png() if signed else None
            )
        ],
        audit=[pdf.AuditEntry(now, "出具", "李娜（勘验人员）", "127.0.0.1", "Mozilla/5.0", digest)],
    )
