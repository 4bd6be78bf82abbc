"""Realistic zh-CN commitment letters (告知承诺书) for the demo matters, and the default.

The booking seed knows the matters; it calls ``seed_templates(session, {matter_id:
matter_title})`` and each matter gets the template whose keywords its title contains (or
the general one). Seeding is idempotent: an existing template for a matter is kept, so an
admin's edits survive ``yunkan demo`` being run again.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

DEFAULT_COMMITMENT_TITLE = "告知承诺书"

_HEAD = """\
{{ agency_name }}：

本人{{ applicant_name }}{% if enterprise_name %}，作为{{ enterprise_name }}\
{% if credit_code %}（统一社会信用代码：{{ credit_code }}）{% endif %}的委托代理人{% endif %}，\
就申请办理“{{ matter_title }}”事项（案件编号：{{ case_number }}），\
在{{ inspection_date }}通过视频方式接受了远程勘验，现郑重承诺如下：
"""

_TAIL = """
本人已知悉：以上承诺内容将记入信用档案；如承诺不实或违反承诺，审批机关可依法撤销\
已作出的行政许可决定，由此产生的法律责任由申请人承担。

承诺人：{{ applicant_name }}
{% if enterprise_name %}单位：{{ enterprise_name }}
{% endif %}日期：{{ inspection_date }}
"""

DEFAULT_COMMITMENT_SOURCE = (
    _HEAD
    + """
一、视频勘验中所展示的场所{% if site_address %}（{{ site_address }}）{% endif %}、\
设施设备和人员均为真实情况，未使用录播、剪辑或借用他处场景。
二、所提交的全部申请材料真实、合法、有效，复印件与原件一致。
三、取得许可后将持续符合法律法规规定的条件，主动接受监管部门的监督检查。
"""
    + _TAIL
)

_SEED = (
    _HEAD
    + """
一、视频中展示的种子生产经营场所{% if site_address %}（{{ site_address }}）{% endif %}、\
种子检验室、加工设备和仓储设施均为本企业实际拥有或依法租用，与申请材料一致。
二、种子检验室配备的发芽箱、水分测定仪、电子天平等仪器设备完好并在检定有效期内；\
检验人员具备相应资格。
三、严格执行《中华人民共和国种子法》，建立种子生产经营档案，不生产经营假、劣种子。
四、许可变更后如生产经营条件发生变化，将在三十日内主动报告。
"""
    + _TAIL
)

_FOOD = (
    _HEAD
    + """
一、视频中展示的经营场所{% if site_address %}（{{ site_address }}）{% endif %}与营业执照\
登记地址一致，食品处理区、贮存区布局合理，生熟分开，远离污染源。
二、冷藏冷冻、消毒、防蝇防鼠等设施齐全且正常运行；从业人员持有效健康证明上岗。
三、建立并执行进货查验、索证索票和食品安全自查制度，不经营超过保质期或来源不明的食品。
"""
    + _TAIL
)

_HOMESTAY = (
    _HEAD
    + """
一、视频中展示的房屋{% if site_address %}（{{ site_address }}）{% endif %}为本人合法所有\
或依法租用，房屋结构安全，不属于违法建筑。
二、客房配备灭火器、应急照明和疏散指示标志，疏散通道畅通；燃气设施经检验合格。
三、落实住宿登记制度，如实登记入住旅客身份信息，按规定上传公安机关。
"""
    + _TAIL
)

_PHARMACY = (
    _HEAD
    + """
一、视频中展示的营业场所和仓库{% if site_address %}（{{ site_address }}）{% endif %}\
与申请材料一致，温湿度监测、避光、防潮、防虫鼠设施运行正常。
二、企业负责人、质量负责人及执业药师在职在岗，处方药与非处方药分区陈列。
三、严格执行《药品经营质量管理规范》，不从非法渠道购进药品。
"""
    + _TAIL
)

TEMPLATES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("种子", "种业"), "农作物种子生产经营许可告知承诺书", _SEED),
    (("食品",), "食品经营许可告知承诺书", _FOOD),
    (("民宿", "住宿", "旅馆"), "民宿开办告知承诺书", _HOMESTAY),
    (("药品", "药店"), "药品零售企业许可告知承诺书", _PHARMACY),
)


def template_for_title(matter_title: str) -> tuple[str, str]:
    """(title, source) of the demo template that fits a matter's title."""
    for keywords, title, source in TEMPLATES:
        if any(k in matter_title for k in keywords):
            return title, source
    return DEFAULT_COMMITMENT_TITLE, DEFAULT_COMMITMENT_SOURCE


async def seed_templates(session: AsyncSession, matters: Mapping[int, str]) -> int:
    """Give each demo matter a template (and the agency a default); returns how many
    were added. The caller commits."""
    from server.letters.models import LetterTemplate

    added = 0
    wanted = {0: (DEFAULT_COMMITMENT_TITLE, DEFAULT_COMMITMENT_SOURCE)}
    wanted.update({mid: template_for_title(title) for mid, title in matters.items()})
    for matter_id, (title, source) in wanted.items():
        exists = await session.scalar(
            select(LetterTemplate.id).where(
                LetterTemplate.matter_id == matter_id, LetterTemplate.kind == "commitment"
            )
        )
        if exists is None:
            session.add(
                LetterTemplate(matter_id=matter_id, kind="commitment", title=title, source=source)
            )
            added += 1
    await session.flush()
    return added
