"""Chinese names of the sample: towns, streets, compounds, hamlets, rivers, parks, brands."""

from __future__ import annotations

import numpy as np
import pandas as pd

TOWN_NAMES = ["菊园新区", "嘉定镇街道", "新成路街道", "真新街道", "南翔镇", "安亭镇",
              "马陆镇", "徐行镇", "华亭镇", "外冈镇", "江桥镇", "嘉定工业区"]
STEMS = (
    "清河 塔城 博乐 城中 叶城 胜辛 裕民 墅沟 洪德 平城 金沙 嘉罗 福海 树屏 梅园 桃园 李园 "
    "银杏 秋霞 州桥 迎园 盛丰 西门 北水 嘉宁 丰庄 白银 新城 金鹤 澄浏 双丁 德富 伊宁 天祝 "
    "永盛 高台 玉门 仓场 汇旺 和政 环城 沪嘉 宝安 嘉戬 城北 练祁 横沥 娄塘 曹王 朱桥 望新 "
    "戬浜 黄渡 方泰 封浜 马陆 希望 众仁 育绿 众和 澄江 嘉唐 新郁 胜竹 汇源 云谷 招贤 宁河 "
    "绿意 嘉安 嘉怡 紫荆 白鹤 浏翔 宝翔 恒荣 沥红 聚源 泰宁 陆渡 钱门 星塔 华江 乐业 菊盛 "
    "嘉新 德园 迎春 新源 振新 汇龙 雨化 昌吉 阿克 和静 苏民 兴贤 石冈 浏岛 嘉前 毛桥"
).split()
BRANDS = ("万科 保利 绿地 中冶 金地 龙湖 招商 华润 嘉宝 嘉乐 金鹤 丽景 汇宝 锦绣 明华 "
          "紫气东来 城投 上实 旭辉 新城").split()
SUFFIX_OLD = ["新村", "小区", "公寓", "一村", "二村", "三村", "新村", "小区"]
SUFFIX_MID = ["花园", "苑", "家园", "新苑", "公寓", "佳苑", "花苑", "名苑"]
SUFFIX_NEW = ["名邸", "雅苑", "华庭", "府", "城", "湾", "悦府", "公馆", "嘉园", "云庭"]
SURNAMES = list("王张李朱陆陈沈顾钱周徐孙吴黄金唐姚杨蔡宋郁施曹范倪龚秦严薛邱")
HAMLET_SUFFIX = ["家宅", "家宅", "家宅", "家浜", "家巷", "家角", "家桥", "家埭"]
DIR_PREFIX = ["", "", "", "东", "西", "南", "北", "前", "后", "大", "小"]
PHASES = ["", "二期", "三期", "四期", "五期", "六期", "七期", "八期", "九期"]
RIVER_NAMES = ["练祁河", "蕰藻浜", "新槎浦", "顾浦", "吴淞江", "娄塘河", "封浜河"]
CANAL_NAMES = ["横沥河", "盐铁塘", "东横沥", "徐行港", "沙浦", "钱门塘", "马陆塘"]
PARK_STEMS = ["紫气东来", "远香湖", "秋霞圃", "汇龙潭", "州桥", "嘉定", "叶池", "桃园",
              "金鹤", "白银"]
STORE_BRANDS = ["全家", "罗森", "快客", "好德", "可的", "联华快客", "7-Eleven", "喜士多"]


def ordinal_names(base: np.ndarray) -> np.ndarray:
    """Make names unique by appending 二期/三期... to repeats, in order (vectorised)."""
    s = pd.Series(base, dtype=object)
    k = s.groupby(s).cumcount().to_numpy()
    phases = np.array(PHASES + [f"{i}期" for i in range(10, 200)], dtype=object)
    return (s.to_numpy() + phases[np.minimum(k, len(phases) - 1)]).astype(object)


def numbered_names(base: np.ndarray, ending: np.ndarray, *, numerals: str = "第") -> np.ndarray:
    """``base + ending``, repeats numbered in order: 清河幼儿园, 清河第二幼儿园, ...
    (``numerals=""``: 全家(清河店), 全家(清河二店), ...)."""
    s = pd.Series(np.asarray(base, dtype=object) + "\x00" + np.asarray(ending, dtype=object))
    k = s.groupby(s).cumcount().to_numpy()
    nums = np.array([""] + [numerals + c for c in "二三四五六七八九"]
                    + [f"{numerals}{i}" for i in range(10, 100)], dtype=object)
    return (np.asarray(base, dtype=object) + nums[np.minimum(k, len(nums) - 1)]
            + np.asarray(ending, dtype=object)).astype(object)

