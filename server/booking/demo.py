"""Demo catalogue for ``yunkan demo``: departments, matters of every kind in both zones,
two windows with realistic plans (lunch-time staggered service, evening hours) and
qualified staff, so that slots are free on the next working days right after start-up.

Idempotent: rows are found by their codes and only missing ones are added.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import User
from server.booking import models as m

DEPARTMENTS = [
    ("ybj", "医疗保障局"),
    ("gjj", "住房公积金管理中心"),
    ("scj", "市场监督管理局"),
    ("nyj", "农业农村局"),
    ("zjj", "住房和城乡建设局"),
]

SEED_CHECKLIST = [
    {"key": "site", "text": "生产经营场所（与申请材料一致）"},
    {"key": "lab", "text": "种子检验室及检验仪器"},
    {"key": "storage", "text": "种子仓储设施（防潮、防虫、防鼠）"},
    {"key": "processing", "text": "种子加工设备及运行情况"},
    {"key": "records", "text": "生产经营档案"},
]

SEED_LETTER = (
    "本单位{applicant}郑重承诺：所提交的{matter}申请材料真实、合法、有效；"
    "远程视频勘验中展示的场所、设施、设备与实际情况一致。如有不实，愿承担相应法律责任。"
)

MATTERS: list[dict[str, Any]] = [
    {
        "code": "ybj-yidi-beian",
        "department": "ybj",
        "name": "医保异地就医备案咨询",
        "zone": "citizen",
        "kind": "consultation",
        "duration_min": 20,
        "seats": 2,
        "buffer_min": 5,
        "allows_video_now": True,
        "materials": ["居民身份证", "医保电子凭证"],
    },
    {
        "code": "gjj-tiqu",
        "department": "gjj",
        "name": "住房公积金提取咨询",
        "zone": "citizen",
        "kind": "consultation",
        "duration_min": 15,
        "seats": 3,
        "allows_video_now": True,
        "materials": ["居民身份证", "购房合同或租房合同"],
    },
    {
        "code": "zjj-jiazhuang-dianti",
        "department": "zjj",
        "name": "既有住宅加装电梯联合勘验",
        "zone": "citizen",
        "kind": "joint_inspection",
        "duration_min": 45,
        "seats": 1,
        "buffer_min": 15,
        "notice_min": 24 * 60,
        "joint_departments": ["scj"],
        "materials": ["业主同意书", "设计方案"],
        "checklist": [
            {"key": "shaft", "text": "井道位置及地下管线"},
            {"key": "access", "text": "出入口与消防通道"},
        ],
    },
    {
        "code": "nyj-zhongzi-biangeng",
        "department": "nyj",
        "name": "农作物种子生产经营许可证变更现场核查",
        "zone": "enterprise",
        "kind": "inspection",
        "duration_min": 30,
        "seats": 1,
        "buffer_min": 10,
        "notice_min": 2 * 60,
        "materials": ["营业执照", "许可证正副本", "检验仪器清单"],
        "checklist": SEED_CHECKLIST,
        "letter_template": SEED_LETTER,
        "issues_licence": True,
        "observed_notice": True,
    },
    {
        "code": "scj-shipin-jingying",
        "department": "scj",
        "name": "食品经营许可现场联合核查",
        "zone": "enterprise",
        "kind": "joint_inspection",
        "duration_min": 40,
        "seats": 1,
        "buffer_min": 10,
        "notice_min": 4 * 60,
        "joint_departments": ["zjj"],
        "materials": ["营业执照", "食品安全管理制度"],
        "checklist": [
            {"key": "layout", "text": "经营场所布局与流程"},
            {"key": "cold", "text": "冷藏冷冻设施"},
            {"key": "staff", "text": "从业人员健康证明"},
        ],
        "letter_template": SEED_LETTER,
    },
    {
        "code": "scj-qiye-kaiban",
        "department": "scj",
        "name": "企业开办线上面对面咨询",
        "zone": "enterprise",
        "kind": "consultation",
        "duration_min": 20,
        "seats": 2,
        "allows_video_now": True,
        "materials": ["拟用名称", "经营范围"],
    },
]

WEEKDAY_RANGES = [
    (9 * 60, 12 * 60, "上午"),
    (12 * 60, 14 * 60, "午间错时"),
    (14 * 60, 17 * 60 + 30, "下午"),
]
EVENING = (17 * 60 + 30, 20 * 60, "延时服务")

WINDOWS = [
    ("w-huimin", "视频窗口 1（惠民）", "ybj", "citizen"),
    ("w-liqi", "视频窗口 2（利企）", "scj", "enterprise"),
]


async def _department_ids(session: AsyncSession) -> dict[str, int]:
    for code, name in DEPARTMENTS:
        if await session.scalar(select(m.Department.id).where(m.Department.code == code)) is None:
            session.add(m.Department(code=code, name=name))
    await session.flush()
    return {d.code: d.id for d in await session.scalars(select(m.Department))}


async def seed(session: AsyncSession, settings: object | None = None) -> None:
    """Add whatever part of the demo catalogue is missing (caller commits)."""
    departments = await _department_ids(session)
    matters: dict[str, m.Matter] = {}
    for spec in MATTERS:
        existing = await session.scalar(select(m.Matter).where(m.Matter.code == spec["code"]))
        if existing is None:
            defaults: dict[str, Any] = {
                "description": "",
                "materials": [],
                "checklist": [],
                "joint_departments": [],
                "buffer_min": 0,
                "notice_min": 60,
                "horizon_days": 14,
                "retention_days": 3 * 365,
                "allows_video_now": False,
                "active": True,
                # Decisions of inspections go to internal review; consultations have none.
                "internal_review": spec["kind"] != "consultation",
            }
            values = {k: v for k, v in spec.items() if k != "department"}
            existing = m.Matter(
                department_id=departments[spec["department"]], **{**defaults, **values}
            )
            session.add(existing)
        matters[spec["code"]] = existing
    await session.flush()
    for code, name, dept, zone in WINDOWS:
        window = await session.scalar(select(m.Window).where(m.Window.code == code))
        if window is not None:
            continue
        window = m.Window(code=code, name=name, department_id=departments[dept], active=True)
        session.add(window)
        await session.flush()
        for weekday in range(5):
            ranges = [*WEEKDAY_RANGES, EVENING] if weekday == 2 else WEEKDAY_RANGES
            for start, end, label in ranges:
                session.add(
                    m.WorkingPlan(
                        window_id=window.id,
                        weekday=weekday,
                        start_min=start,
                        end_min=end,
                        label=label,
                    )
                )
        for matter in matters.values():
            if matter.zone == zone:
                session.add(m.WindowMatter(window_id=window.id, matter_id=matter.id))
    staff = (
        await session.scalars(
            select(User.id).where(
                User.active.is_(True), User.role.in_(("inspector", "supervisor", "admin"))
            )
        )
    ).all()
    have = {(q.user_id, q.matter_id) for q in await session.scalars(select(m.StaffQualification))}
    for user_id in staff:
        for matter in matters.values():
            if (user_id, matter.id) not in have:
                session.add(m.StaffQualification(user_id=user_id, matter_id=matter.id))
    await session.flush()
