"""Demo data: a realistic, reproducible organisation and customer base (SPEC L5).

``seed_demo`` fills an empty database with departments, users (one shared password), roles, tag
groups, custom fields and a few thousand Chinese customers with contacts, phones, tag history and
audit events. Everything comes from one ``random.Random(seed)``, drawn so that the stream never
depends on the clock: the same seed gives the same names, phones, contacts and attributes. Dates are
relative to a reference "now" (so the data always looks fresh) and move with it, as do the few
things that follow from dates (an age band, whether a brand-new customer has signed yet); pass
``now`` to make every row identical.

The data carries a persona signal for analytics: customers from 老客户推荐, tagged 高意向 or at
level A sign much more often than average, customers from 地推 rarely; 品质优先 / 服务导向 and the
26-45 age bands lean towards signing, 价格敏感 and 低意向 away from it.

Rows are written with bulk INSERTs in one transaction. Customer and contact ids are assigned here
(continuing after the current maximum) so children can refer to them without RETURNING; on
PostgreSQL the id sequences are moved past them afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from app.access import PERMISSIONS, DataScope
from app.db import transaction
from app.models import (
    AuditEvent,
    Contact,
    CustomerPhone,
    CustomerTag,
    CustomFieldDefinition,
    Department,
    Reminder,
    Role,
    Tag,
    TagGroup,
    User,
    Visit,
    user_roles,
)
from app.models import Customer as CustomerModel
from app.models.base import utcnow
from app.security import hash_password_sync
from app.services.audit import diff, jsonable
from app.services.demo_deals import write_deals
from app.services.demo_orders import write_repeat_orders
from app.services.demo_pools import write_pools
from app.services.normalize import normalize_email, normalize_name

logger = logging.getLogger(__name__)

DEMO_PASSWORD = "demo1234"  # noqa: S105  (documented demo logins)
CHUNK = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class DemoSummary:
    logins: list[tuple[str, str, str]]  # (username, display name, role name)
    customers: int
    seeded: bool


# --- roles -------------------------------------------------------------------------------------

_DEFAULT_ROLES: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "admin": (
        "系统管理员：全部权限，可见全部客户",
        list(PERMISSIONS),
        {"customer": DataScope.ALL.value},
    ),
    "manager": (
        "销售经理：可见本部门及下级部门的客户",
        ["customer.create", "customer.update", "customer.delete", "target.manage"],
        {"customer": DataScope.DEPARTMENT_AND_CHILDREN.value},
    ),
    "sales_rep": (
        "销售代表：可见自己的客户",
        ["customer.create", "customer.update"],
        {"customer": DataScope.OWN.value},
    ),
}


async def ensure_default_roles(session: AsyncSession) -> dict[str, Role]:
    """The built-in roles ``admin``, ``manager`` and ``sales_rep``, created if missing.

    Existing roles of those names are returned as they are (an admin may have edited them).
    """
    existing = {
        role.name: role
        for role in (
            await session.scalars(select(Role).where(Role.name.in_(list(_DEFAULT_ROLES))))
        ).all()
    }
    created = False
    for name, (description, permissions, scopes) in _DEFAULT_ROLES.items():
        if name not in existing:
            role = Role(
                name=name,
                description=description,
                permissions=list(permissions),
                scopes=dict(scopes),
                is_system=True,
            )
            session.add(role)
            existing[name] = role
            created = True
    if created:
        await session.flush()
    return {name: existing[name] for name in _DEFAULT_ROLES}


# --- word lists --------------------------------------------------------------------------------

# (surname, pinyin, weight): the common surnames, roughly by frequency.
_SURNAMES: tuple[tuple[str, str, float], ...] = (
    ("王", "wang", 7.1), ("李", "li", 7.0), ("张", "zhang", 6.7), ("刘", "liu", 5.4),
    ("陈", "chen", 4.5), ("杨", "yang", 3.1), ("黄", "huang", 2.2), ("赵", "zhao", 2.0),
    ("吴", "wu", 1.9), ("周", "zhou", 1.9), ("徐", "xu", 1.3), ("孙", "sun", 1.2),
    ("马", "ma", 1.2), ("朱", "zhu", 1.1), ("胡", "hu", 1.0), ("郭", "guo", 1.0),
    ("何", "he", 0.9), ("林", "lin", 0.9), ("高", "gao", 0.9), ("罗", "luo", 0.8),
    ("郑", "zheng", 0.8), ("梁", "liang", 0.7), ("谢", "xie", 0.6), ("宋", "song", 0.6),
    ("唐", "tang", 0.6), ("许", "xu", 0.5), ("韩", "han", 0.5), ("冯", "feng", 0.5),
    ("邓", "deng", 0.5), ("曹", "cao", 0.5), ("彭", "peng", 0.5), ("曾", "zeng", 0.5),
    ("肖", "xiao", 0.5), ("田", "tian", 0.4), ("董", "dong", 0.4), ("潘", "pan", 0.4),
    ("袁", "yuan", 0.4), ("蔡", "cai", 0.4), ("蒋", "jiang", 0.4), ("余", "yu", 0.4),
    ("于", "yu", 0.4), ("杜", "du", 0.4), ("叶", "ye", 0.4), ("程", "cheng", 0.4),
    ("魏", "wei", 0.3), ("苏", "su", 0.3), ("吕", "lv", 0.3), ("丁", "ding", 0.3),
    ("任", "ren", 0.3), ("沈", "shen", 0.3), ("姚", "yao", 0.3), ("卢", "lu", 0.3),
    ("钟", "zhong", 0.3), ("姜", "jiang", 0.3), ("崔", "cui", 0.3), ("谭", "tan", 0.3),
    ("陆", "lu", 0.3), ("范", "fan", 0.3), ("汪", "wang", 0.3), ("廖", "liao", 0.3),
    ("石", "shi", 0.3), ("金", "jin", 0.3), ("贾", "jia", 0.2), ("夏", "xia", 0.2),
    ("付", "fu", 0.2), ("方", "fang", 0.2), ("邹", "zou", 0.2), ("熊", "xiong", 0.2),
    ("白", "bai", 0.2), ("孟", "meng", 0.2), ("秦", "qin", 0.2), ("邱", "qiu", 0.2),
    ("侯", "hou", 0.2), ("江", "jiang", 0.2), ("尹", "yin", 0.2), ("薛", "xue", 0.2),
    ("段", "duan", 0.2), ("雷", "lei", 0.2), ("龙", "long", 0.2), ("史", "shi", 0.2),
    ("陶", "tao", 0.2), ("贺", "he", 0.2), ("毛", "mao", 0.2), ("郝", "hao", 0.2),
    ("顾", "gu", 0.2), ("龚", "gong", 0.2), ("邵", "shao", 0.2), ("万", "wan", 0.2),
    ("钱", "qian", 0.2), ("戴", "dai", 0.2), ("严", "yan", 0.2), ("孔", "kong", 0.1),
)  # fmt: skip

_GIVEN_MALE: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("勇", "yong"), ("杰", "jie"),
    ("涛", "tao"), ("斌", "bin"), ("超", "chao"), ("明", "ming"), ("刚", "gang"), ("平", "ping"),
    ("辉", "hui"), ("鹏", "peng"), ("华", "hua"), ("飞", "fei"), ("鑫", "xin"), ("波", "bo"),
    ("宇", "yu"), ("浩", "hao"), ("凯", "kai"), ("健", "jian"), ("俊", "jun"), ("帆", "fan"),
    ("旭", "xu"), ("宁", "ning"), ("龙", "long"), ("洋", "yang"), ("博", "bo"), ("文", "wen"),
    ("志", "zhi"), ("建", "jian"), ("国", "guo"), ("海", "hai"), ("东", "dong"), ("峰", "feng"),
    ("晨", "chen"), ("哲", "zhe"), ("睿", "rui"), ("泽", "ze"), ("子", "zi"), ("轩", "xuan"),
    ("天", "tian"), ("嘉", "jia"), ("家", "jia"), ("成", "cheng"), ("永", "yong"), ("亮", "liang"),
)  # fmt: skip

_GIVEN_FEMALE: tuple[tuple[str, str], ...] = (
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"),
    ("娟", "juan"), ("霞", "xia"), ("秀", "xiu"), ("玲", "ling"), ("英", "ying"), ("燕", "yan"),
    ("萍", "ping"), ("红", "hong"), ("婷", "ting"), ("雪", "xue"), ("琳", "lin"), ("晶", "jing"),
    ("颖", "ying"), ("倩", "qian"), ("洁", "jie"), ("慧", "hui"), ("佳", "jia"), ("欣", "xin"),
    ("怡", "yi"), ("梦", "meng"), ("雨", "yu"), ("涵", "han"), ("悦", "yue"), ("诗", "shi"),
    ("琪", "qi"), ("萱", "xuan"), ("妍", "yan"), ("晓", "xiao"), ("春", "chun"), ("兰", "lan"),
    ("月", "yue"), ("美", "mei"), ("清", "qing"), ("思", "si"), ("文", "wen"), ("丹", "dan"),
)  # fmt: skip

# Brand names are two characters, e.g. 青禾, 恒泰, 瑞丰: a first and a second syllable.
_BRAND_FIRST: tuple[tuple[str, str], ...] = (
    ("青", "qing"), ("恒", "heng"), ("瑞", "rui"), ("华", "hua"), ("金", "jin"), ("鼎", "ding"),
    ("嘉", "jia"), ("盛", "sheng"), ("永", "yong"), ("泰", "tai"), ("博", "bo"), ("创", "chuang"),
    ("远", "yuan"), ("新", "xin"), ("宏", "hong"), ("天", "tian"), ("诚", "cheng"), ("和", "he"),
    ("信", "xin"), ("德", "de"), ("佳", "jia"), ("鑫", "xin"), ("润", "run"), ("卓", "zhuo"),
    ("优", "you"), ("明", "ming"), ("安", "an"), ("康", "kang"), ("汇", "hui"), ("众", "zhong"),
    ("方", "fang"), ("正", "zheng"), ("云", "yun"), ("海", "hai"), ("星", "xing"), ("智", "zhi"),
    ("达", "da"), ("顺", "shun"), ("源", "yuan"), ("锦", "jin"), ("立", "li"), ("中", "zhong"),
    ("万", "wan"), ("荣", "rong"), ("联", "lian"), ("启", "qi"), ("聚", "ju"), ("科", "ke"),
)  # fmt: skip

_BRAND_SECOND: tuple[tuple[str, str], ...] = (
    ("禾", "he"), ("泰", "tai"), ("丰", "feng"), ("信", "xin"), ("鼎", "ding"), ("元", "yuan"),
    ("达", "da"), ("盛", "sheng"), ("源", "yuan"), ("通", "tong"), ("航", "hang"), ("川", "chuan"),
    ("悦", "yue"), ("辰", "chen"), ("宇", "yu"), ("晟", "sheng"), ("弘", "hong"), ("升", "sheng"),
    ("联", "lian"), ("峰", "feng"), ("森", "sen"), ("腾", "teng"), ("翔", "xiang"), ("阳", "yang"),
    ("迈", "mai"), ("合", "he"), ("益", "yi"), ("邦", "bang"), ("诺", "nuo"), ("瑞", "rui"),
    ("恒", "heng"), ("昌", "chang"), ("隆", "long"), ("兴", "xing"), ("德", "de"), ("美", "mei"),
)  # fmt: skip

# industry -> (weight, words that go between the brand and the legal form)
_INDUSTRIES: dict[str, tuple[float, tuple[str, ...]]] = {
    "制造业": (14, ("机械", "电子", "新材料", "精密机械", "五金制品", "智能装备", "塑胶制品")),
    "零售": (14, ("商贸", "百货", "超市", "便利店", "贸易", "日用品")),
    "餐饮": (10, ("餐饮管理", "食品", "餐饮", "茶饮", "酒店管理", "餐饮连锁")),
    "教育培训": (9, ("教育科技", "培训学校", "文化传播", "教育咨询", "职业培训")),
    "医疗健康": (9, ("医疗器械", "健康管理", "生物科技", "医药科技", "大药房连锁")),
    "信息技术": (14, ("科技", "软件", "网络科技", "信息技术", "数据科技", "智能科技")),
    "建筑装饰": (8, ("建筑装饰工程", "装饰设计", "建设工程", "建材", "家居")),
    "物流运输": (7, ("物流", "供应链管理", "运输", "快运", "仓储服务")),
    "金融服务": (6, ("投资咨询", "融资租赁", "保险代理", "财务咨询", "资产管理")),
    "美容美业": (9, ("美容", "美业管理", "健康美容", "化妆品", "美发")),
}
# What a private person (B2C customer) is a lead for.
_PERSON_INDUSTRIES: tuple[tuple[str, float], ...] = (
    ("教育培训", 25), ("医疗健康", 20), ("美容美业", 25), ("零售", 15), ("餐饮", 5),
    ("金融服务", 10),
)  # fmt: skip

_LEGAL_FORMS: tuple[tuple[str, float], ...] = (
    ("有限公司", 75),
    ("有限责任公司", 10),
    ("股份有限公司", 9),
    ("集团有限公司", 6),
)

# (province, city, pinyin, lat, lng, weight, districts)
_CITIES: tuple[tuple[str, str, str, float, float, float, tuple[str, ...]], ...] = (
    ("浙江省", "杭州市", "hangzhou", 30.2741, 120.1551, 10,
     ("西湖区", "上城区", "拱墅区", "滨江区", "余杭区", "萧山区")),
    ("浙江省", "宁波市", "ningbo", 29.8683, 121.5440, 4, ("海曙区", "鄞州区", "江北区", "北仑区")),
    ("浙江省", "温州市", "wenzhou", 27.9938, 120.6994, 3, ("鹿城区", "瓯海区", "龙湾区")),
    ("浙江省", "绍兴市", "shaoxing", 30.0303, 120.5801, 2, ("越城区", "柯桥区", "上虞区")),
    ("江苏省", "苏州市", "suzhou", 31.2990, 120.5853, 6, ("姑苏区", "吴中区", "相城区", "虎丘区")),
    ("江苏省", "南京市", "nanjing", 32.0603, 118.7969, 5,
     ("玄武区", "秦淮区", "鼓楼区", "建邺区", "江宁区")),
    ("江苏省", "无锡市", "wuxi", 31.4912, 120.3119, 3, ("梁溪区", "滨湖区", "新吴区")),
    ("上海市", "上海市", "shanghai", 31.2304, 121.4737, 10,
     ("浦东新区", "徐汇区", "静安区", "闵行区", "长宁区", "杨浦区")),
    ("安徽省", "合肥市", "hefei", 31.8206, 117.2272, 3, ("蜀山区", "包河区", "庐阳区")),
    ("广东省", "广州市", "guangzhou", 23.1291, 113.2644, 8,
     ("天河区", "越秀区", "海珠区", "白云区", "番禺区")),
    ("广东省", "深圳市", "shenzhen", 22.5431, 114.0579, 9,
     ("南山区", "福田区", "罗湖区", "宝安区", "龙岗区")),
    ("广东省", "东莞市", "dongguan", 23.0207, 113.7518, 4, ("南城街道", "东城街道", "长安镇")),
    ("广东省", "佛山市", "foshan", 23.0215, 113.1214, 3, ("禅城区", "南海区", "顺德区")),
    ("福建省", "厦门市", "xiamen", 24.4798, 118.0894, 3, ("思明区", "湖里区", "集美区")),
    ("福建省", "福州市", "fuzhou", 26.0745, 119.2965, 2, ("鼓楼区", "台江区", "仓山区")),
    ("广西壮族自治区", "南宁市", "nanning", 22.8170, 108.3665, 2, ("青秀区", "兴宁区", "西乡塘区")),
    ("北京市", "北京市", "beijing", 39.9042, 116.4074, 8,
     ("朝阳区", "海淀区", "东城区", "西城区", "丰台区")),
    ("天津市", "天津市", "tianjin", 39.3434, 117.3616, 3, ("和平区", "南开区", "河西区")),
    ("四川省", "成都市", "chengdu", 30.5728, 104.0668, 5, ("锦江区", "武侯区", "青羊区", "成华区")),
    ("重庆市", "重庆市", "chongqing", 29.5630, 106.5516, 4,
     ("渝中区", "江北区", "渝北区", "南岸区")),
    ("湖北省", "武汉市", "wuhan", 30.5928, 114.3055, 4, ("江汉区", "武昌区", "洪山区", "汉阳区")),
    ("湖南省", "长沙市", "changsha", 28.2282, 112.9388, 3,
     ("岳麓区", "芙蓉区", "天心区", "开福区")),
    ("山东省", "济南市", "jinan", 36.6512, 117.1201, 2, ("历下区", "市中区", "槐荫区")),
    ("山东省", "青岛市", "qingdao", 36.0671, 120.3826, 3, ("市南区", "市北区", "崂山区", "黄岛区")),
    ("陕西省", "西安市", "xian", 34.3416, 108.9398, 3, ("雁塔区", "碑林区", "未央区", "莲湖区")),
    ("河南省", "郑州市", "zhengzhou", 34.7466, 113.6254, 3, ("金水区", "二七区", "中原区")),
)  # fmt: skip

_ROADS = (
    "人民路", "解放路", "中山路", "建设路", "文化路", "长江路", "新华路", "和平路", "科技路",
    "创业路", "学院路", "滨江大道", "环城北路", "东风路", "青年路", "工业大道", "迎宾大道",
    "花园路", "金融街", "世纪大道",
)  # fmt: skip
_BUILDINGS = ("国际大厦", "科技园", "商务中心", "创意园", "金融中心", "广场", "产业园")

_SOURCES: tuple[tuple[str, float], ...] = (
    ("展会", 12), ("线上广告", 20), ("老客户推荐", 14), ("电话营销", 16), ("官网咨询", 14),
    ("地推", 12), ("合作伙伴", 12),
)  # fmt: skip

_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "150", "151", "152",
    "153", "155", "156", "157", "158", "159", "170", "173", "176", "177", "178", "180", "181",
    "182", "183", "184", "185", "186", "187", "188", "189", "191", "193", "195", "198", "199",
)  # fmt: skip

_TITLES: tuple[tuple[str, float], ...] = (
    ("总经理", 14), ("副总经理", 6), ("董事长", 3), ("采购经理", 16), ("采购专员", 8),
    ("财务总监", 8), ("行政主管", 8), ("店长", 10), ("技术总监", 6), ("运营经理", 8),
    ("市场经理", 7), ("办公室主任", 6),
)  # fmt: skip

_CUSTOMER_NOTES = (
    "对价格比较敏感，报价需附详细清单",
    "年底有采购预算，可在十一月前重点跟进",
    "决策人是老板本人，周末也方便联系",
    "之前用过竞品，对售后响应速度不满意",
    "希望先试用一个月再决定",
    "采购流程较长，需要走招标",
    "对方关注交付周期，要求两周内到货",
    "由老客户介绍，信任度较高",
    "展会上留的名片，已加微信",
    "新开分店，有扩充需求",
    "需要开具增值税专用发票",
    "上次拜访时提到明年有扩产计划",
)  # fmt: skip
_CONTACT_NOTES = (
    "负责日常对接", "决策人", "喜欢喝茶，上午开会不便联系", "有技术背景，关注参数",
    "对接付款事宜", "新入职，需重新建立关系",
)  # fmt: skip
_EMAIL_PREFIXES = ("info", "sales", "contact", "service", "hr", "office", "purchase")
_FREE_MAIL = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com")

# Tag groups: (name, color, exclusive, tags)
_TAG_GROUPS: tuple[tuple[str, str, bool, tuple[str, ...]], ...] = (
    ("购买需求", "#f5222d", True, ("高意向", "中意向", "低意向")),
    ("企业特征", "#1677ff", False, ("连锁经营", "外资企业", "高新技术", "上市公司")),
    ("年龄段", "#722ed1", True, ("18-25", "26-35", "36-45", "46-60", "60+")),
    ("兴趣偏好", "#13c2c2", False, ("价格敏感", "品质优先", "服务导向", "线上活跃")),
)

_CHANNELS = ("线上", "门店", "经销商", "电话")
_COMPANY_SIZES = ("1-20人", "21-100人", "101-500人", "500人以上")
# (key, label, type, options)
_CUSTOM_FIELDS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("budget", "预算(元)", "number", ()),
    ("channels", "渠道", "multi_select", _CHANNELS),
    ("contract_due", "合同到期", "date", ()),
    ("company_size", "企业规模", "single_select", _COMPANY_SIZES),
    ("wechat_group", "微信群", "text", ()),
)

# (band, lowest age, highest age, share of private customers)
_AGE_BANDS: tuple[tuple[str, int, int, float], ...] = (
    ("18-25", 18, 25, 30), ("26-35", 26, 35, 32), ("36-45", 36, 45, 26), ("46-60", 46, 60, 19),
    ("60+", 61, 78, 8),
)  # fmt: skip

# Owners of customers: (username or None for the pool, weight). rep1 owns ~12 %.
_OWNER_WEIGHTS: tuple[tuple[str | None, float], ...] = (
    (None, 5), ("rep1", 12), ("rep2", 9), ("rep3", 9), ("rep4", 9), ("rep5", 9), ("rep6", 9),
    ("rep7", 9), ("rep8", 9), ("mgr1", 6.7), ("mgr2", 6.7), ("mgr3", 6.6),
)  # fmt: skip

# --- the organisation --------------------------------------------------------------------------

# (key, name, parent key, manager username, the provinces its people mostly sell in)
_DEPARTMENTS: tuple[tuple[str, str, str | None, str, tuple[str, ...]], ...] = (
    ("east", "华东销售部", None, "mgr1", ("浙江省", "江苏省", "上海市", "安徽省")),
    ("hangzhou", "杭州分部", "east", "mgr2", ("浙江省",)),
    ("south", "华南销售部", None, "mgr3", ("广东省", "福建省", "广西壮族自治区")),
)
# (username, display name, role, department key)
_USERS: tuple[tuple[str, str, str, str | None], ...] = (
    ("admin", "系统管理员", "admin", None),
    ("mgr1", "王建国", "manager", "east"),
    ("mgr2", "陈丽华", "manager", "hangzhou"),
    ("mgr3", "林志强", "manager", "south"),
    ("rep1", "王芳", "sales_rep", "east"),
    ("rep2", "李强", "sales_rep", "east"),
    ("rep3", "张伟", "sales_rep", "east"),
    ("rep4", "刘洋", "sales_rep", "hangzhou"),
    ("rep5", "赵敏", "sales_rep", "hangzhou"),
    ("rep6", "黄俊", "sales_rep", "south"),
    ("rep7", "周静", "sales_rep", "south"),
    ("rep8", "吴磊", "sales_rep", "south"),
)

# The accounts seed_demo creates: (username, display name, role); password DEMO_PASSWORD.
DEMO_LOGINS: tuple[tuple[str, str, str], ...] = tuple((u, n, r) for u, n, r, _d in _USERS)

# Signing odds multipliers: the persona signal.
_SOURCE_FACTOR = {
    "老客户推荐": 3.0, "官网咨询": 1.4, "合作伙伴": 1.3, "展会": 1.1, "线上广告": 0.8,
    "电话营销": 0.6, "地推": 0.25,
}  # fmt: skip
_LEVEL_FACTOR = {"A": 2.5, "B": 1.1, "C": 0.6}
_TAG_FACTOR = {
    "高意向": 3.0, "中意向": 1.1, "低意向": 0.3, "品质优先": 1.4, "服务导向": 1.25,
    "价格敏感": 0.75, "连锁经营": 1.25, "上市公司": 1.4, "26-35": 1.35, "36-45": 1.3,
    "18-25": 0.7, "60+": 0.6,
}  # fmt: skip
SIGNED_SHARE = 0.20


def _age_factor(age: int) -> float:
    """The persona signal of the seed's example: leads skew 18–20, signed customers 20–25."""
    if age <= 20:
        return 0.25
    if age <= 25:
        return 4.0
    return 1.5 if age <= 30 else 1.0


_RADIUS_KM = 15.0
_HISTORY_DAYS = 548  # customers were created over the past 18 months

# --- generation (pure: no database, everything from the one Random) ---------------------------


def _cum(weights: Sequence[float]) -> list[float]:
    return list(accumulate(weights))


def _age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _band_of(age: int) -> str | None:
    for band, low, high, _share in _AGE_BANDS:
        if low <= age <= high or (band == "60+" and age > high):
            return band
    return None


def _birthday(birth: dt.date, years: int) -> dt.date:
    try:
        return birth.replace(year=birth.year + years)
    except ValueError:  # 29 February
        return birth.replace(year=birth.year + years, day=28)


@dataclass
class _TagSpan:
    group: str
    tag: str
    added_at: dt.datetime
    removed_at: dt.datetime | None = None


@dataclass
class _ContactPlan:
    name: str
    title: str
    phones: list[str]
    email: str | None
    wechat: str | None
    is_primary: bool
    birth_date: dt.date | None
    notes: str | None
    created_at: dt.datetime


@dataclass
class _CustomerPlan:
    name: str
    kind: str
    owner: str | None
    created_by: str
    created_at: dt.datetime
    phones: list[str]
    email: str | None
    province: str
    city: str
    address: str
    lat: float
    lng: float
    industry: str
    source: str
    level: str
    gender: str | None = None
    birth_date: dt.date | None = None
    notes: str | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)
    tags: list[_TagSpan] = field(default_factory=list)
    contacts: list[_ContactPlan] = field(default_factory=list)
    signed_at: dt.datetime | None = None
    last_follow_up_at: dt.datetime | None = None
    next_follow_up_at: dt.datetime | None = None
    domain: str = ""


class _Generator:
    def __init__(self, seed: int, now: dt.datetime) -> None:
        self.rng = random.Random(seed)
        # Draws added later come from a second stream, so the first one — every name, phone and
        # date it produced before — stays as it was.
        self.aux = random.Random(seed * 7919 + 1)
        self.now = now
        self.today = now.date()
        self._phones: set[str] = set()
        self._names: set[str] = set()
        self._surname_cw = _cum([w for _s, _p, w in _SURNAMES])
        self._industry_names = list(_INDUSTRIES)
        self._industry_cw = _cum([w for w, _words in _INDUSTRIES.values()])
        self._person_industries = [i for i, _w in _PERSON_INDUSTRIES]
        self._person_industry_cw = _cum([w for _i, w in _PERSON_INDUSTRIES])
        self._legal_forms = [f for f, _w in _LEGAL_FORMS]
        self._legal_cw = _cum([w for _f, w in _LEGAL_FORMS])
        self._sources = [s for s, _w in _SOURCES]
        self._source_cw = _cum([w for _s, w in _SOURCES])
        self._titles = [t for t, _w in _TITLES]
        self._title_cw = _cum([w for _t, w in _TITLES])
        self._age_cw = _cum([share for *_rest, share in _AGE_BANDS])
        self._owners = [o for o, _w in _OWNER_WEIGHTS]
        self._owner_cw = _cum([w for _o, w in _OWNER_WEIGHTS])
        self._city_cw = _cum([c[5] for c in _CITIES])
        # Cities each department's people mostly sell in (east/hangzhou/south), by username.
        self._home_cities: dict[str, tuple[list[int], list[float]]] = {}
        for key, _name, _parent, _manager, provinces in _DEPARTMENTS:
            idx = [i for i, c in enumerate(_CITIES) if c[0] in provinces]
            self._home_cities[key] = (idx, _cum([_CITIES[i][5] for i in idx]))
        self._user_department = {u: d for u, _n, _r, d in _USERS}

    # small helpers
    def pick(self, items: Sequence[T], cum_weights: Sequence[float]) -> T:
        return self.rng.choices(items, cum_weights=cum_weights)[0]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def between(
        self, start: dt.datetime, end: dt.datetime, fraction: float | None = None
    ) -> dt.datetime:
        """A moment in [start, end], whole seconds.

        Draws exactly one ``random()`` however long the span: ranges that depend on "now" must
        never change how much of the stream is used, or one second later every name would differ.
        """
        if fraction is None:
            fraction = self.rng.random()
        span = max(0.0, (end - start).total_seconds())
        return start + dt.timedelta(seconds=int(span * fraction))

    def phone(self) -> str:
        while True:
            number = self.rng.choice(_MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if number not in self._phones:
                self._phones.add(number)
                return number

    def person_name(self, gender: str) -> tuple[str, str, str]:
        """(name, surname pinyin, given-name pinyin)."""
        surname, surname_py, _w = self.pick(_SURNAMES, self._surname_cw)
        chars = _GIVEN_MALE if gender == "male" else _GIVEN_FEMALE
        count = 1 if self.chance(0.35) else 2
        given = [self.rng.choice(chars) for _ in range(count)]
        return (
            surname + "".join(c for c, _p in given),
            surname_py,
            "".join(p for _c, p in given),
        )

    def created_at(self) -> dt.datetime:
        """Over the past 18 months, more in recent months (the business grows); office hours."""
        u = self.rng.random()
        days_ago = int(_HISTORY_DAYS * (u if self.chance(0.5) else 1 - math.sqrt(u)))
        day = self.today - dt.timedelta(days=days_ago)
        # 09:00-19:00 Beijing time is 01:00-11:00 UTC.
        moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(
            seconds=self.rng.randint(3600, 11 * 3600)
        )
        if moment > self.now:
            moment -= dt.timedelta(days=1)
        return moment

    def location(self, owner: str | None) -> tuple[str, str, str, float, float, str]:
        department = self._user_department.get(owner) if owner else None
        if department is not None and self.chance(0.8):
            idx, cw = self._home_cities[department]
            city = _CITIES[self.pick(idx, cw)]
        else:
            city = self.pick(_CITIES, self._city_cw)
        province, name, pinyin, lat0, lng0, _w, districts = city
        # Uniform in a disc of _RADIUS_KM around the centre.
        r = _RADIUS_KM * math.sqrt(self.rng.random())
        theta = self.rng.uniform(0, 2 * math.pi)
        lat = lat0 + (r * math.cos(theta)) / 111.32
        lng = lng0 + (r * math.sin(theta)) / (111.32 * math.cos(math.radians(lat0)))
        road = self.rng.choice(_ROADS)
        address = f"{self.rng.choice(districts)}{road}{self.rng.randint(1, 999)}号"
        if self.chance(0.4):
            address += (
                f"{self.rng.choice(_BUILDINGS)}{self.rng.randint(1, 30)}楼"
                f"{self.rng.randint(1, 30):02d}{self.rng.randint(1, 20):02d}室"
            )
        return province, name, pinyin, round(lat, 6), round(lng, 6), address

    def company_name(self, city: str, industry: str, city_py: str) -> tuple[str, str]:
        """A unique company name and a web domain for it."""
        words = _INDUSTRIES[industry][1]
        short_city = city.removesuffix("市")
        for attempt in range(50):
            first, first_py = self.rng.choice(_BRAND_FIRST)
            second, second_py = self.rng.choice(_BRAND_SECOND)
            if first == second:
                continue
            legal = self.pick(self._legal_forms, self._legal_cw)
            prefix = short_city if self.chance(0.8) else ""
            name = f"{prefix}{first}{second}{self.rng.choice(words)}{legal}"
            if attempt >= 20:  # crowded: a numbered branch keeps it unique
                name = f"{name}第{self.rng.randint(2, 99)}分公司"
            key = normalize_name(name)
            if key not in self._names:
                self._names.add(key)
                tail = self.rng.choice(("", "", "tech", "group", city_py))
                tld = self.rng.choice(("com", "com", "cn", "com.cn"))
                return name, f"{first_py}{second_py}{tail}.{tld}"
        raise RuntimeError("could not find a unique company name")  # pragma: no cover

    def unique_person(self, gender: str) -> tuple[str, str, str]:
        for _ in range(10):
            name, s_py, g_py = self.person_name(gender)
            if normalize_name(name) not in self._names:
                break
        self._names.add(normalize_name(name))
        return name, s_py, g_py

    # one customer
    def customer(self) -> _CustomerPlan:
        rng = self.rng
        owner = self.pick(self._owners, self._owner_cw)
        created_by = owner if owner is not None and self.chance(0.88) else "admin"
        created = self.created_at()
        province, city, city_py, lat, lng, address = self.location(owner)
        source = self.pick(self._sources, self._source_cw)
        level_weights = {"老客户推荐": (25, 40, 35), "地推": (8, 30, 62)}.get(source, (15, 35, 50))
        level = rng.choices(("A", "B", "C"), weights=level_weights)[0]
        is_company = self.chance(0.8)
        if is_company:
            industry = self.pick(self._industry_names, self._industry_cw)
            name, domain = self.company_name(city, industry, city_py)
            plan = _CustomerPlan(
                name=name, kind="company", owner=owner, created_by=created_by,
                created_at=created, phones=[], email=None, province=province, city=city,
                address=address, lat=lat, lng=lng, industry=industry, source=source, level=level,
                domain=domain,
            )  # fmt: skip
            count = rng.choices((0, 1, 2), weights=(3, 75, 22))[0]
            plan.phones = [self.phone() for _ in range(count)]
            if self.chance(0.5):
                plan.email = f"{rng.choice(_EMAIL_PREFIXES)}@{domain}"
        else:
            gender = "female" if self.chance(0.55) else "male"
            name, s_py, g_py = self.unique_person(gender)
            industry = self.pick(self._person_industries, self._person_industry_cw)
            plan = _CustomerPlan(
                name=name, kind="person", owner=owner, created_by=created_by,
                created_at=created, phones=[self.phone()], email=None, province=province,
                city=city, address=address, lat=lat, lng=lng, industry=industry, source=source,
                level=level, gender=gender,
            )  # fmt: skip
            if self.chance(0.1):
                plan.phones.append(self.phone())
            band_idx = self.pick(range(len(_AGE_BANDS)), self._age_cw)
            _band, low, high, _share = _AGE_BANDS[band_idx]
            age_days = rng.randint(math.ceil(low * 365.25) + 1, math.floor((high + 1) * 365.25) - 2)
            if low == _AGE_BANDS[0][1] and self.aux.random() < 0.6:
                # The seed's persona example: many leads are 18–20 (they rarely sign).
                age_days = self.aux.randint(math.ceil(18 * 365.25) + 1, math.floor(21 * 365.25) - 2)
            plan.birth_date = self.today - dt.timedelta(days=age_days)
            if self.chance(0.35):
                if self.chance(0.5):
                    plan.email = f"{rng.randint(10000, 999999999)}@qq.com"
                else:
                    plan.email = f"{g_py}.{s_py}{rng.randint(1, 99)}@{rng.choice(_FREE_MAIL)}"
        if self.chance(0.35):
            notes = rng.sample(_CUSTOMER_NOTES, k=rng.choice((1, 1, 2)))
            plan.notes = "；".join(notes)
        self.tags(plan)
        if is_company:
            self.contacts(plan)
        return plan

    def tags(self, plan: _CustomerPlan) -> None:
        rng, now = self.rng, self.now
        actor_start = plan.created_at

        def first_added() -> dt.datetime:
            # Mostly tagged while entering the customer, otherwise within the next three days.
            minutes = rng.randint(1, 30) if self.chance(0.7) else rng.randint(30, 3 * 24 * 60)
            return min(now, actor_start + dt.timedelta(minutes=minutes))

        # 购买需求 (exclusive), correlated with level and source.
        if self.chance(0.85):
            weights = {"A": [55.0, 35, 10], "B": [25.0, 50, 25], "C": [12.0, 38, 50]}[plan.level]
            if plan.source == "老客户推荐":
                weights[0] *= 1.6
            elif plan.source == "地推":
                weights[2] *= 1.5
            options = ("高意向", "中意向", "低意向")
            tag = rng.choices(options, weights=weights)[0]
            added = first_added()
            # Drawn whether used or not, so the stream does not depend on "now" (see between).
            switch = self.chance(0.35)
            earlier = rng.choice([o for o in options if o != tag])
            when = rng.random()
            if switch and now - added > dt.timedelta(days=2):
                # It used to carry another intent tag: the history rows personas read.
                switched = self.between(added + dt.timedelta(days=1), now, when)
                plan.tags.append(_TagSpan("购买需求", earlier, added, switched))
                added = switched
            plan.tags.append(_TagSpan("购买需求", tag, added))
        # 企业特征 (companies)
        if plan.kind == "company":
            chain = 0.35 if plan.industry in ("零售", "餐饮", "美容美业", "医疗健康") else 0.08
            hightech = {"信息技术": 0.45, "制造业": 0.25, "医疗健康": 0.25}.get(plan.industry, 0.03)
            listed = 0.08 if plan.level == "A" else 0.01
            features = {
                "连锁经营": chain, "外资企业": 0.07, "高新技术": hightech, "上市公司": listed
            }  # fmt: skip
            for tag, p in features.items():
                if self.chance(p):
                    plan.tags.append(_TagSpan("企业特征", tag, first_added()))
        # 年龄段 (persons; exclusive, follows the birth date, so a birthday can move the band)
        if plan.birth_date is not None:
            added = first_added()
            band_then = _band_of(_age_on(plan.birth_date, added.date()))
            band_now = _band_of(_age_on(plan.birth_date, self.today))
            if band_now is not None:
                if band_then != band_now:
                    low = next(b[1] for b in _AGE_BANDS if b[0] == band_now)
                    day = _birthday(plan.birth_date, low)
                    crossed = max(added, dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC))
                    if band_then is not None:
                        plan.tags.append(_TagSpan("年龄段", band_then, added, crossed))
                    added = crossed
                plan.tags.append(_TagSpan("年龄段", band_now, added))
        # 兴趣偏好
        young = plan.birth_date is not None and _age_on(plan.birth_date, self.today) <= 35
        online = plan.source in ("线上广告", "官网咨询")
        chances = {
            "价格敏感": {"A": 0.2, "B": 0.35, "C": 0.45}[plan.level],
            "品质优先": {"A": 0.45, "B": 0.25, "C": 0.15}[plan.level],
            "服务导向": 0.25,
            "线上活跃": 0.55 if (young or online) else 0.2,
        }
        active = [tag for tag, p in chances.items() if self.chance(p)]
        for tag in active:
            plan.tags.append(_TagSpan("兴趣偏好", tag, first_added()))
        # A preference it had once and lost (history); draws fixed as for 购买需求.
        spare = [t for t in chances if t not in active]
        lost, pick, added, when = self.chance(0.15), rng.random(), first_added(), rng.random()
        if spare and lost and now - added > dt.timedelta(days=2):
            removed = self.between(added + dt.timedelta(days=1), now, when)
            tag = spare[int(pick * len(spare))]
            plan.tags.append(_TagSpan("兴趣偏好", tag, added, removed))

    def contacts(self, plan: _CustomerPlan) -> None:
        rng = self.rng
        count = rng.choices((0, 1, 2, 3), weights=(20, 40, 28, 12))[0]
        for i in range(count):
            gender = "female" if self.chance(0.45) else "male"
            name, s_py, g_py = self.person_name(gender)
            title = self.pick(self._titles, self._title_cw)
            phones = [self.phone()] + ([self.phone()] if self.chance(0.1) else [])
            wechat = None
            if self.chance(0.5):
                wechat = (
                    f"{g_py}{s_py}{rng.randint(1, 9999)}"
                    if self.chance(0.6)
                    else "wxid_" + "".join(rng.choices("abcdefghijkmnpqrstuvwxyz23456789", k=12))
                )
            email = f"{g_py}.{s_py}@{plan.domain}" if self.chance(0.3) else None
            birth = None
            if self.chance(0.2):
                birth = self.today - dt.timedelta(days=rng.randint(25 * 365, 58 * 365))
            notes = rng.choice(_CONTACT_NOTES) if self.chance(0.15) else None
            created = min(self.now, plan.created_at + dt.timedelta(minutes=rng.randint(0, 4320)))
            plan.contacts.append(
                _ContactPlan(name, title, phones, email, wechat, i == 0, birth, notes, created)
            )

    def signing_weight(self, plan: _CustomerPlan) -> float:
        weight = _SOURCE_FACTOR[plan.source] * _LEVEL_FACTOR[plan.level]
        for span in plan.tags:
            if span.removed_at is None:
                weight *= _TAG_FACTOR.get(span.tag, 1.0)
        if not any(s.group == "购买需求" and s.removed_at is None for s in plan.tags):
            weight *= 0.8
        if plan.owner is None:
            weight *= 0.2
        if plan.birth_date is not None:
            weight *= _age_factor(_age_on(plan.birth_date, plan.created_at.date()))
        # Brand-new customers have had no time to sign.
        age_days = (self.now - plan.created_at).total_seconds() / 86400
        return weight * min(1.0, age_days / 60)

    def finish(self, plans: list[_CustomerPlan]) -> None:
        """Deals, follow-ups and custom fields, once every customer exists."""
        rng, now = self.rng, self.now
        weights = [self.signing_weight(p) for p in plans]
        scale = _calibrate(weights, SIGNED_SHARE, cap=0.9)
        for plan, weight in zip(plans, weights, strict=True):
            signs, when = self.chance(min(0.9, scale * weight)), rng.uniform(0.15, 0.95)
            if signs:
                plan.signed_at = self.between(plan.created_at, now, when)
            follow_share = 0.5 if plan.owner is None else 0.9
            if self.chance(follow_share):
                start = max(plan.created_at, now - dt.timedelta(days=90))
                plan.last_follow_up_at = self.between(start, now)
            if plan.owner is not None and self.chance(0.3):
                plan.next_follow_up_at = now.replace(second=0) + dt.timedelta(
                    minutes=15 * rng.randint(4, 14 * 96)
                )
            self.custom_fields(plan)

    def custom_fields(self, plan: _CustomerPlan) -> None:
        rng = self.rng
        values: dict[str, Any] = {}
        if self.chance(0.75):
            # Companies in steps of 10,000 yuan, private customers in steps of 1,000 yuan.
            if plan.kind == "company":
                low, high = {"A": (20, 300), "B": (5, 60), "C": (1, 15)}[plan.level]
                values["budget"] = rng.randint(low, high) * 10000
            else:
                low, high = {"A": (20, 200), "B": (5, 50), "C": (1, 15)}[plan.level]
                values["budget"] = rng.randint(low, high) * 1000
        if self.chance(0.65):
            picked = set(rng.sample(_CHANNELS, k=rng.choice((1, 1, 2, 3))))
            values["channels"] = [c for c in _CHANNELS if c in picked]
        # Drawn for everyone: whether a customer has signed by "now" must not shift the stream.
        has_contract, months = self.chance(0.85), rng.choice((6, 12, 12, 12, 24))
        if plan.signed_at is not None and has_contract:
            values["contract_due"] = (
                plan.signed_at.date() + dt.timedelta(days=months * 365 // 12)
            ).isoformat()
        if plan.kind == "company" and self.chance(0.8):
            size_weights = {"A": (5, 25, 40, 30), "B": (20, 45, 28, 7), "C": (50, 38, 10, 2)}
            values["company_size"] = rng.choices(_COMPANY_SIZES, weights=size_weights[plan.level])[
                0
            ]
        if self.chance(0.25):
            base = plan.name.removesuffix("有限公司") if plan.kind == "company" else plan.name
            values["wechat_group"] = f"{base}{rng.choice(('服务群', '对接群', 'VIP群'))}"
        plan.custom_fields = values


def _calibrate(weights: Sequence[float], share: float, *, cap: float) -> float:
    """The factor k with mean(min(cap, k * w)) == share (bisection; weights are >= 0)."""
    if not weights or max(weights) <= 0:
        return 0.0
    low, high = 0.0, 1.0
    while sum(min(cap, high * w) for w in weights) / len(weights) < share and high < 1e9:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        if sum(min(cap, mid * w) for w in weights) / len(weights) < share:
            low = mid
        else:
            high = mid
    return high


def _generate(seed: int, now: dt.datetime, customers: int) -> tuple[list[str], list[_CustomerPlan]]:
    """(phones of the users in _USERS order, customer plans)."""
    gen = _Generator(seed, now)
    user_phones = [gen.phone() for _ in _USERS]
    plans = [gen.customer() for _ in range(customers)]
    gen.finish(plans)
    return user_phones, plans


# --- writing -----------------------------------------------------------------------------------


async def _bulk(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """Core executemany INSERTs of ``CHUNK`` rows; every row has the same keys.

    Core rather than ORM bulk mode: the ORM leaves NULL keys out of a row, which splits a batch
    into one statement per run of rows with the same non-NULL columns (thousands of round trips).
    """
    table = model.__table__
    for start in range(0, len(rows), CHUNK):
        await session.execute(insert(table), rows[start : start + CHUNK])


async def _next_id(session: AsyncSession, column: InstrumentedAttribute[int]) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(column), 0))) or 0) + 1


async def _sync_sequences(
    session: AsyncSession, columns: Sequence[tuple[str, InstrumentedAttribute[int]]]
) -> None:
    """PostgreSQL: move each id sequence past the explicit ids we inserted."""
    if (await session.connection()).dialect.name != "postgresql":
        return
    for table, column in columns:
        highest = select(func.max(column)).scalar_subquery()
        await session.execute(
            select(func.setval(func.pg_get_serial_sequence(table, "id"), highest)).where(
                highest.is_not(None)
            )
        )


async def _ensure_config(session: AsyncSession, now: dt.datetime) -> dict[tuple[str, str], int]:
    """Tag groups, tags and custom fields, created if missing; returns {(group, tag): tag id}."""
    groups = {g.name: g for g in (await session.scalars(select(TagGroup))).all()}
    for position, (name, color, exclusive, _tags) in enumerate(_TAG_GROUPS):
        if name not in groups:
            groups[name] = TagGroup(
                name=name, color=color, exclusive=exclusive, position=position,
                created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(groups[name])
    await session.flush()
    existing = {(t.group_id, t.name): t for t in (await session.scalars(select(Tag))).all()}
    tags: dict[tuple[str, str], Tag] = {}
    for group_name, _color, _exclusive, names in _TAG_GROUPS:
        group = groups[group_name]
        for position, tag_name in enumerate(names):
            tag = existing.get((group.id, tag_name))
            if tag is None:
                tag = Tag(
                    group_id=group.id, name=tag_name, position=position,
                    created_at=now, updated_at=now,
                )  # fmt: skip
                session.add(tag)
            tags[(group_name, tag_name)] = tag
    defined = set(
        (
            await session.scalars(
                select(CustomFieldDefinition.key).where(CustomFieldDefinition.entity == "customer")
            )
        ).all()
    )
    for position, (key, label, kind, options) in enumerate(_CUSTOM_FIELDS):
        if key not in defined:
            session.add(
                CustomFieldDefinition(
                    entity="customer", key=key, label=label, type=kind, options=list(options),
                    required=False, position=position, created_at=now, updated_at=now,
                )
            )  # fmt: skip
    await session.flush()
    return {key: tag.id for key, tag in tags.items()}


_VISIT_NOTES = ("带新品样册", "确认续约条款", "演示系统功能", "回访使用情况", "商谈年度采购计划")


async def _write_visits(
    session: AsyncSession, rng: random.Random, user_ids: dict[str, int], now: dt.datetime
) -> None:
    """A few planned visits per rep (today and the coming days) with reminders, so the "today"
    screen and the reminder dispatcher have something to show from the first login."""
    zone = ZoneInfo("Asia/Shanghai")
    today = now.astimezone(zone).date()
    for username, user_id in user_ids.items():
        if not username.startswith("rep"):
            continue
        owned = (
            await session.execute(
                select(CustomerModel.id, CustomerModel.name)
                .where(CustomerModel.owner_id == user_id)
                .order_by(CustomerModel.id)
                .limit(40)
            )
        ).all()
        picks = rng.sample(owned, k=min(5, len(owned)))
        for index, (customer_id, name) in enumerate(picks):
            day = today + dt.timedelta(days=0 if index < 2 else index - 1)
            starts = dt.datetime.combine(day, dt.time(10 + 2 * (index % 4), 0), tzinfo=zone)
            if starts <= now:
                starts = (now + dt.timedelta(hours=1 + index)).replace(
                    minute=0, second=0, microsecond=0
                )
            visit = Visit(
                customer_id=customer_id,
                owner_id=user_id,
                starts_at=starts.astimezone(dt.UTC),
                duration_minutes=rng.choice((30, 60, 90)),
                note=rng.choice(_VISIT_NOTES),
                status="planned",
                reminder_offsets_minutes=[30],
                created_at=now,
                updated_at=now,
            )
            session.add(visit)
            await session.flush()
            local = starts.astimezone(zone)
            session.add(
                Reminder(
                    user_id=user_id,
                    kind="visit_reminder",
                    due_at=(starts - dt.timedelta(minutes=30)).astimezone(dt.UTC),
                    visit_id=visit.id,
                    customer_id=customer_id,
                    offset_minutes=30,
                    title=f"拜访提醒：{name}",
                    body=f"30 分钟后（{local:%m-%d %H:%M}）拜访 {name}",
                    link=f"/visits/{visit.id}",
                    data={"visit_id": visit.id, "customer_id": customer_id},
                    created_at=now,
                )
            )
    await session.flush()


async def _create_org(
    session: AsyncSession, roles: dict[str, Role], password_hash: str, phones: list[str],
    since: dt.datetime,
) -> dict[str, int]:  # fmt: skip
    """Departments and users; returns {username: id}."""
    departments: dict[str, Department] = {}
    for key, name, parent_key, _manager, _provinces in _DEPARTMENTS:
        parent = departments[parent_key] if parent_key else None
        department = Department(
            name=name, parent_id=parent.id if parent else None, created_at=since, updated_at=since
        )
        session.add(department)
        await session.flush()
        department.path = f"{parent.path if parent else '/'}{department.id}/"
        departments[key] = department
    users: dict[str, User] = {}
    for (username, display, _role, dept_key), phone in zip(_USERS, phones, strict=True):
        users[username] = User(
            username=username, display_name=display, email=f"{username}@demo.kehu.example",
            phone=phone, password_hash=password_hash,
            department_id=departments[dept_key].id if dept_key else None,
            created_at=since, updated_at=since,
        )  # fmt: skip
        session.add(users[username])
    await session.flush()
    await session.execute(
        insert(user_roles),
        [{"user_id": users[u].id, "role_id": roles[r].id} for u, _d, r, _k in _USERS],
    )
    for key, _name, _parent, manager, _provinces in _DEPARTMENTS:
        departments[key].manager_id = users[manager].id
    await session.flush()
    return {username: user.id for username, user in users.items()}


_AUDITED = (
    "name", "kind", "phones", "email", "province", "city", "address", "lat", "lng", "industry",
    "source", "level", "gender", "birth_date", "notes", "owner_id", "deal_status", "signed_at",
    "next_follow_up_at", "custom_fields",
)  # fmt: skip
_CONTACT_AUDITED = (
    "name", "title", "phones", "email", "wechat", "is_primary", "birth_date", "notes",
)  # fmt: skip


class _Timeline:
    """Audit events of one customer, handed out in time order."""

    def __init__(self, customer_id: int, default_actor: int) -> None:
        self.customer_id = customer_id
        self.default_actor = default_actor
        self._events: list[tuple[dt.datetime, int, dict[str, Any]]] = []

    def add(
        self,
        at: dt.datetime,
        action: str,
        changes: dict[str, Any],
        *,
        entity: str = "customer",
        entity_id: int | None = None,
        actor_id: int | None = None,
    ) -> None:
        event = {
            "at": at,
            "actor_id": actor_id or self.default_actor,
            "entity": entity,
            "entity_id": entity_id or self.customer_id,
            "customer_id": self.customer_id,
            "action": action,
            "changes": changes,
        }
        self._events.append((at, len(self._events), event))

    def sorted(self) -> list[dict[str, Any]]:
        return [event for _at, _n, event in sorted(self._events, key=lambda e: (e[0], e[1]))]


async def _write_customers(
    session: AsyncSession,
    plans: list[_CustomerPlan],
    user_ids: dict[str, int],
    tag_ids: dict[tuple[str, str], int],
) -> None:
    customer_id = await _next_id(session, CustomerModel.id)
    contact_id = await _next_id(session, Contact.id)
    customers: list[dict[str, Any]] = []
    contacts: list[dict[str, Any]] = []
    phones: list[dict[str, Any]] = []
    tags: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for plan in plans:
        owner_id = user_ids[plan.owner] if plan.owner else None
        creator_id = user_ids[plan.created_by]
        actor_id = owner_id or creator_id
        moments = [plan.created_at, plan.signed_at, plan.last_follow_up_at]
        moments += [m for t in plan.tags for m in (t.added_at, t.removed_at)]
        row: dict[str, Any] = {
            "id": customer_id,
            "name": plan.name,
            "name_normalized": normalize_name(plan.name),
            "kind": plan.kind,
            "phones": plan.phones,
            "email": plan.email,
            "email_normalized": normalize_email(plan.email),
            "province": plan.province,
            "city": plan.city,
            "address": plan.address,
            "lat": plan.lat,
            "lng": plan.lng,
            "industry": plan.industry,
            "source": plan.source,
            "level": plan.level,
            "gender": plan.gender,
            "birth_date": plan.birth_date,
            "notes": plan.notes,
            "owner_id": owner_id,
            "owner_assigned_at": plan.created_at if owner_id else None,
            "created_by_id": creator_id,
            "deal_status": "signed" if plan.signed_at else "none",
            "signed_at": plan.signed_at,
            "last_follow_up_at": plan.last_follow_up_at,
            "next_follow_up_at": plan.next_follow_up_at,
            "custom_fields": plan.custom_fields,
            "created_at": plan.created_at,
            "updated_at": max(m for m in moments if m is not None),
            "version": 1,
        }
        customers.append(row)
        phones.extend(
            {"customer_id": customer_id, "contact_id": None, "number": n} for n in plan.phones
        )
        # The timeline, sorted so that event ids follow time within a customer.
        timeline = _Timeline(customer_id, creator_id)
        initial = {k: row[k] for k in _AUDITED} | {
            "deal_status": "none", "signed_at": None, "next_follow_up_at": None,
            "custom_fields": {k: v for k, v in plan.custom_fields.items() if k != "contract_due"},
        }  # fmt: skip
        timeline.add(plan.created_at, "created", diff({}, jsonable(initial)))
        if plan.signed_at is not None:
            after_fields = plan.custom_fields
            changes: dict[str, Any] = {
                "deal_status": {"before": "none", "after": "signed"},
                "signed_at": {"before": None, "after": plan.signed_at.isoformat()},
            }
            if "contract_due" in after_fields:
                changes["custom_fields"] = {
                    "before": initial["custom_fields"], "after": after_fields
                }  # fmt: skip
            timeline.add(plan.signed_at, "updated", changes, actor_id=actor_id)
        for span in plan.tags:
            label = f"{span.group}/{span.tag}"
            tags.append(
                {
                    "customer_id": customer_id,
                    "tag_id": tag_ids[(span.group, span.tag)],
                    "added_at": span.added_at,
                    "added_by_id": actor_id,
                    "removed_at": span.removed_at,
                    "removed_by_id": actor_id if span.removed_at else None,
                }
            )
            added = {"tag": {"before": None, "after": label}}
            timeline.add(span.added_at, "tag_added", added, actor_id=actor_id)
            if span.removed_at is not None:
                removed = {"tag": {"before": label, "after": None}}
                timeline.add(span.removed_at, "tag_removed", removed, actor_id=actor_id)
        for contact in plan.contacts:
            crow: dict[str, Any] = {
                "id": contact_id,
                "customer_id": customer_id,
                "name": contact.name,
                "title": contact.title,
                "phones": contact.phones,
                "email": contact.email,
                "wechat": contact.wechat,
                "is_primary": contact.is_primary,
                "birth_date": contact.birth_date,
                "notes": contact.notes,
                "created_at": contact.created_at,
                "updated_at": contact.created_at,
                "version": 1,
            }
            contacts.append(crow)
            phones.extend(
                {"customer_id": customer_id, "contact_id": contact_id, "number": n}
                for n in contact.phones
            )
            timeline.add(
                contact.created_at,
                "contact_created",
                diff({}, jsonable({k: crow[k] for k in _CONTACT_AUDITED})),
                entity="contact",
                entity_id=contact_id,
                actor_id=actor_id,
            )
            contact_id += 1
        events.extend(timeline.sorted())
        customer_id += 1
    await _bulk(session, CustomerModel, customers)
    await _bulk(session, Contact, contacts)
    await _bulk(session, CustomerPhone, phones)
    await _bulk(session, CustomerTag, tags)
    await _bulk(session, AuditEvent, events)
    await _sync_sequences(session, [("customers", CustomerModel.id), ("contacts", Contact.id)])


async def seed_demo(
    maker: async_sessionmaker[AsyncSession],
    *,
    seed: int = 2026,
    customers: int = 2000,
    now: dt.datetime | None = None,
) -> DemoSummary:
    """Fill an empty database with demo data; a database that has users is left alone.

    ``now`` is the reference moment the generated dates are relative to (default: the current
    time); the same ``seed`` gives the same names, phones and attributes whatever it is.
    """
    if customers < 0:
        raise ValueError("customers must be >= 0")
    now = (now or utcnow()).astimezone(dt.UTC).replace(microsecond=0)
    async with transaction(maker) as session:
        if await session.scalar(select(User.id).limit(1)) is not None:
            return DemoSummary(logins=[], customers=0, seeded=False)
        roles = await ensure_default_roles(session)
        password_hash = await asyncio.to_thread(hash_password_sync, DEMO_PASSWORD)
        user_phones, plans = _generate(seed, now, customers)
        since = now - dt.timedelta(days=_HISTORY_DAYS + 30)
        user_ids = await _create_org(session, roles, password_hash, user_phones, since)
        tag_ids = await _ensure_config(session, since)
        await _write_customers(session, plans, user_ids, tag_ids)
        await _write_visits(session, random.Random(seed + 1), user_ids, now)
        await write_deals(session, random.Random(seed + 2), user_ids, now, max(1, customers // 5))
        await write_pools(session, random.Random(seed + 3), user_ids, now)
        await write_repeat_orders(session, random.Random(seed + 4), now)
    # Fresh planner statistics after a bulk load: without them PostgreSQL plans a 200k-row table
    # as if it were empty (measured: list p50 198 ms before ANALYZE, 10 ms after; bench/RESULTS.md).
    async with maker() as session:
        await session.execute(text("ANALYZE"))
        await session.commit()
    logger.info("demo data seeded", extra={"customers": customers, "seed": seed})
    return DemoSummary(
        logins=list(DEMO_LOGINS),
        customers=customers,
        seeded=True,
    )
