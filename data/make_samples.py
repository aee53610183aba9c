"""Generate the bundled sample corpora (synthetic, written by the bmes_tagger authors, MIT).

Run from the repository root::

    python data/make_samples.py

Writes data/sample-cws/{train,dev,test}.txt (segmented, two spaces between words),
data/sample-cws/raw.txt (the test sentences unsegmented, with one empty line, for
`tagger predict`) and data/sample-ner/{train,dev,test}.bmes (one `CHAR TAG` per line, blank line
between sentences, PER/LOC/ORG). Standard library only; the output is the same on every run.

Sentences come from templates over the hand-written lexicon below; nothing is taken from a real
corpus. Segmentation follows the PKU (People's Daily) convention throughout: surname and given
name are separate words (王  小明), an organisation is split into its parts (北京  大学), a
number and its measure word are separate (三  家), a date is split into year, month and day
(一九九八年  三月  五日), and "place + 省/市/县" is one word (浙江省). Some nouns occur only in
dev/test, and generated person and place names are mostly new there, so dev/test hold
out-of-vocabulary words; every character of dev/test occurs in train (the script checks it).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {"train": 500, "dev": 80, "test": 80}
MIN_CHARS, MAX_CHARS = 6, 45

SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "蒋", "蔡", "余", "欧阳", "司马", "诸葛"]
# Given-name characters: the first of two tends to come from GIVEN_FIRST, a single or second one
# from GIVEN_LAST, as in real names; some characters are in both.
GIVEN_FIRST = list("建志晓思小嘉子国文立春秋天雨诗佳新海明玉秀永德少俊")
GIVEN_LAST = list("伟芳娜敏静丽强磊军洋勇艳杰涛超霞平刚英华萍红鹏飞辉宇浩凯欣雪梅琳晨阳"
                  "波宁鑫东婷昊瑞博泽怡涵明玉华国")
CITIES = ["北京", "上海", "天津", "重庆", "广州", "深圳", "南京", "杭州", "武汉", "成都", "西安", "长沙", "沈阳", "济南", "青岛", "大连", "厦门", "福州", "昆明", "贵阳", "南宁", "兰州", "合肥", "郑州", "太原", "苏州", "无锡", "宁波", "哈尔滨", "石家庄"]
PROVINCES = ["河北", "山西", "辽宁", "吉林", "江苏", "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "云南", "陕西", "甘肃", "青海"]
COUNTRIES = ["中国", "美国", "日本", "法国", "德国", "英国", "俄罗斯", "印度", "巴西", "意大利"]
COUNTRY_ABBREVS = list("中美日法德英俄")  # one-character country names (S-LOC), as in 中  美  两  国
LOC_STEMS = list("东西南北清平安宁新华长山河阳江湖石桥溪林丰泉云龙")
LOC_KINDS = ["县", "镇", "村", "区", "路", "山", "河"]
ABBREVS = list("京沪津渝粤苏浙鲁")  # one-character province and city names (S-LOC)
ORG_KINDS = ["大学", "银行", "公司", "医院", "研究所", "委员会", "电视台", "集团", "中学", "图书馆", "出版社", "博物馆"]
ORG_STEMS = ["华夏", "长城", "东方", "光明", "人民", "中华", "新华", "黄河", "长江", "阳光", "未来", "科技", "恒通", "宏达", "远航", "星海", "金桥", "鼎盛", "瑞丰", "联合"]

NOUNS = ["经济", "技术", "市场", "企业", "问题", "政府", "人民", "社会", "国家", "文化", "教育", "科技", "产品", "项目", "计划", "服务", "资金", "农民", "学生", "老师", "工人", "城市", "农村", "环境", "历史", "世界", "生活", "水平", "政策", "网络", "数据", "公路", "铁路", "医疗", "新闻", "报告", "作品", "比赛", "球队", "朋友", "孩子", "工程", "设备", "能源", "交通", "旅游", "农业", "工业", "资源", "人才", "质量", "法律", "体育", "艺术", "音乐", "电影", "书籍", "活动", "方案", "标准", "价格", "收入", "消费", "投资", "出口", "水利", "粮食", "专家", "家庭", "机会", "员工", "同学", "学校", "工作", "生产", "创新", "发明"]
# Nouns held out of train: each is made of characters that train uses in other words.
OOV_NOUNS = ["市民", "家长", "大会", "会长", "产业", "学者", "文学", "民生", "学会", "国产", "人生", "工会", "新生", "发电"]
PLACE_NOUNS = ["农村", "城市", "学校", "工厂", "社区", "家乡"]
VERBS = ["发展", "建设", "访问", "参加", "举行", "召开", "发布", "提出", "支持", "推动", "加强", "完成", "研究", "学习", "组织", "参观", "讨论", "解决", "改善", "提高", "扩大", "保护", "开发", "调查", "考察", "签署", "启动", "实施", "推广", "关注", "欢迎", "生产", "创新"]
SAY = ["表示", "认为", "指出", "强调", "介绍", "说"]
ADJS_ATTR = ["新", "重要", "主要", "良好", "全面", "美好", "巨大", "先进", "优秀", "基本", "重大", "传统", "现代", "大"]
ADJS_PRED = ["重要", "良好", "美好", "先进", "优秀", "稳定", "丰富", "困难", "热闹", "安全"]
DEGREE = ["很", "非常", "十分", "更加", "越来越"]
ADVS = ["已经", "正在", "将", "也", "都", "还", "不断", "进一步", "共同", "继续", "首次", "再次"]
TITLES = ["教授", "经理", "主任", "记者", "院长", "校长", "工程师", "市长", "局长", "医生", "董事长", "研究员"]
TIMES = ["今年", "去年", "明年", "昨天", "今天", "上午", "下午", "近日", "目前", "最近", "本月", "年初"]
NUMS = ["一", "两", "三", "四", "五", "六", "七", "八", "九", "十", "二十", "三十", "五十", "一百", "几", "数"]
MEASURES = ["个", "位", "家", "项", "次", "名", "座", "条", "批", "所"]
PERCENT = ["百分之五", "百分之十", "百分之二十", "百分之三十", "一倍", "两倍"]
YEARS = ["一九九七年", "一九九八年", "一九九九年", "二○○○年", "二○○一年", "二○○五年"]
MONTHS = ["一月", "二月", "三月", "四月", "五月", "六月", "七月", "八月", "九月", "十月", "十一月", "十二月"]
DAYS = ["一日", "二日", "三日", "五日", "八日", "十日", "十二日", "十五日", "二十日", "二十六日", "三十日"]

Chunk = tuple[list[str], str | None]  # words, entity type (None: not an entity)
Template = Callable[[], list[Chunk]]


class Lexicon:
    """Random word and name choices for one split.

    Args:
        rng: the split's own random stream.
        held_out: True for dev/test, whose nouns include OOV_NOUNS.
    """

    def __init__(self, rng: random.Random, held_out: bool) -> None:
        self.rng = rng
        # dev/test favour the held-out nouns so that OOV recall has enough words to measure
        self.nouns = NOUNS + OOV_NOUNS if held_out else list(NOUNS)

    def pick(self, pool: list[str]) -> str:
        """One word from pool."""
        return self.rng.choice(pool)

    def noun(self) -> str:
        """A common noun."""
        return self.pick(self.nouns)

    def person(self) -> Chunk:
        """A person name: surname and given name as two words."""
        given = self.pick(GIVEN_LAST)
        if self.rng.random() < 0.7:
            given = self.pick(GIVEN_FIRST if self.rng.random() < 0.85 else GIVEN_LAST) + given
        return [self.pick(SURNAMES), given], "PER"

    def place(self) -> Chunk:
        """A place name: a city, a province, a country or a generated county/road/river."""
        r = self.rng.random()
        if r < 0.4:
            return [self.pick(CITIES) + self.rng.choice(("", "", "", "市"))], "LOC"
        if r < 0.6:
            return [self.pick(PROVINCES) + self.rng.choice(("", "省"))], "LOC"
        if r < 0.75:
            return [self.pick(COUNTRIES)], "LOC"
        stem = "".join(self.rng.sample(LOC_STEMS, 2))
        return [stem + self.pick(LOC_KINDS)], "LOC"

    def org(self) -> Chunk:
        """An organisation: a place or a stem followed by its kind (北京  大学)."""
        r = self.rng.random()
        if r < 0.35:
            head = [self.pick(CITIES + PROVINCES)]
        elif r < 0.4:
            head = self.place()[0]
        else:
            head = [self.pick(ORG_STEMS)]
        return [*head, self.pick(ORG_KINDS)], "ORG"

    def abbrev(self, pool: list[str]) -> Chunk:
        """A one-character place name (S-LOC)."""
        return [self.pick(pool)], "LOC"

    def two(self, make: Callable[[], Chunk], *between: str) -> list[Chunk]:
        """Two different results of make, with the words between (if any) between them."""
        first = make()
        second = make()
        while "".join(second[0]) == "".join(first[0]):
            second = make()
        return [first, w(*between), second] if between else [first, second]

    def date(self) -> list[str]:
        """A date as PKU splits it: [year] month [day]."""
        words = [self.pick(MONTHS)]
        if self.rng.random() < 0.5:
            words.insert(0, self.pick(YEARS))
        if self.rng.random() < 0.7:
            words.append(self.pick(DAYS))
        return words

    def quantity(self) -> list[str]:
        """A number and its measure word, two words."""
        return [self.pick(NUMS), self.pick(MEASURES)]


def w(*words: str) -> Chunk:
    """Words outside any entity."""
    return list(words), None


def templates(lex: Lexicon) -> list[Template]:
    """The sentence templates; each call of one returns a fresh sentence as chunks."""
    n, p = lex.noun, lex.pick

    def v() -> str:
        return p(VERBS)

    def a() -> str:
        return p(ADJS_ATTR)

    def adv() -> str:
        return p(ADVS)

    return [
        lambda: [w(p(TIMES)), lex.person(), w("在"), lex.place(), w(v(), "了", a(), n(), "。")],
        lambda: [lex.person(), w("在"), lex.place(), w("的"), lex.org(), w("工作", "。")],
        lambda: [lex.org(), w("发布", "了", "新", "的", n(), "。")],
        lambda: [lex.org(), w(adv(), v(), n(), "，"), lex.person(), w(p(SAY), "：", "“"),
                 w(n(), "的", n(), adv(), v(), "。", "”")],
        lambda: [lex.person(), w("是"), lex.org(), w("的", p(TITLES), "。")],
        lambda: [lex.place(), w("的", n(), adv(), v(), "，", n(), "也", v(), "了", "。")],
        lambda: [*lex.two(lex.person, "和"), w(p(TIMES), "从"), *lex.two(lex.place, "来到"),
                 w("，", v(), "当地", "的", n(), "。")],
        lambda: [*lex.two(lex.org, "与"), w("在"), lex.place(), w("举行", n(), "会议", "。")],
        lambda: [w("据"), lex.org(), w(p(SAY), "，"), lex.place(),
                 w(p(TIMES), "的", n(), "增长", "了", p(PERCENT), "。")],
        lambda: [*lex.two(lambda: lex.abbrev(ABBREVS), "、"),
                 w("两", "地", "的", n(), adv(), v(), "。")],
        lambda: [*lex.two(lambda: lex.abbrev(COUNTRY_ABBREVS)),
                 w("两", "国", p(TIMES), "签署", "了", n(), "合作", "协议", "。")],
        lambda: [w("“", n(), p(DEGREE), p(ADJS_PRED), "！", "”"), lex.person(), w(p(SAY), "。")],
        lambda: [w(*lex.quantity(), n(), v(), "了"), lex.place(), w("的", n(), "。")],
        lambda: [w(*lex.date(), "，"), lex.person(), w("在"), lex.org(),
                 w(v(), n(), "，", "并", v(), "了", a(), n(), "。")],
        lambda: [lex.person(), w(p(TITLES), adv(), v(), "，"), lex.org(),
                 w("将", v(), *lex.quantity(), a(), n(), "。")],
        lambda: [lex.person(), w("为什么", "没有", "参加"), lex.org(), w("的", n(), "？")],
        lambda: [w("你", "知道"), lex.place(), w("的", n(), "在", "哪里", "吗", "？")],
        lambda: [w(n(), "、", n(), "和", n(), "都", "是"), lex.place(), w("的", "重要", n(), "。")],
        lambda: [w("我们", "要", v(), n(), "，", v(), n(), "！")],
        lambda: [lex.place(), w("的", p(PLACE_NOUNS), p(DEGREE), p(ADJS_PRED), "。")],
        lambda: [*lex.two(lex.person, "的", n(), p(DEGREE), p(ADJS_PRED), "，"),
                 w("的", n(), "也", "不", "差", "。")],
        lambda: [lex.org(), w(p(TIMES), "在"), lex.abbrev(ABBREVS),
                 w("成立", "了", *lex.quantity(), "新", "的", n(), "中心", "。")],
    ]


def sentence(lex: Lexicon, frames: list[Template]) -> list[Chunk]:
    """One sentence from a random template, sometimes two clauses joined by a comma."""
    chunks = lex.rng.choice(frames)()
    if lex.rng.random() < 0.3 and chunks[-1][0][-1] == "。":
        head = chunks[:-1] + [(chunks[-1][0][:-1], chunks[-1][1])]
        chunks = [*head, w("，"), *lex.rng.choice(frames)()]
    return chunks


def to_segmented(chunks: list[Chunk]) -> str:
    """The sentence as words separated by two spaces."""
    return "  ".join(word for words, _ in chunks for word in words)


def to_bmes(chunks: list[Chunk]) -> list[tuple[str, str]]:
    """The sentence as (character, BMES entity tag) pairs."""
    rows: list[tuple[str, str]] = []
    for words, label in chunks:
        text = "".join(words)
        if label is None:
            rows.extend((c, "O") for c in text)
        elif len(text) == 1:
            rows.append((text, f"S-{label}"))
        else:
            rows.append((text[0], f"B-{label}"))
            rows.extend((c, f"M-{label}") for c in text[1:-1])
            rows.append((text[-1], f"E-{label}"))
    return rows


def generate(
    seed: int, count: int, held_out: bool, exclude: set[str], alphabet: set[str] | None
) -> list[list[Chunk]]:
    """count distinct sentences of MIN_CHARS..MAX_CHARS characters, none of them in exclude.

    A sentence with a character outside alphabet (None: any) is skipped, so that dev/test use
    only characters seen in train.
    """
    lex = Lexicon(random.Random(seed), held_out)
    frames = templates(lex)
    out: list[list[Chunk]] = []
    seen = set(exclude)
    while len(out) < count:
        chunks = sentence(lex, frames)
        key = to_segmented(chunks)
        text = key.replace(" ", "")
        if key in seen or not MIN_CHARS <= len(text) <= MAX_CHARS:
            continue
        if alphabet is not None and not set(text) <= alphabet:
            continue
        seen.add(key)
        out.append(chunks)
    return out


def check(splits: dict[str, list[list[Chunk]]]) -> None:
    """Fail if dev/test repeat a train sentence or use a character that train lacks."""
    train_text = {"".join(c for c, _ in to_bmes(s)) for s in splits["train"]}
    train_chars = set("".join(train_text))
    for split in ("dev", "test"):
        for s in splits[split]:
            text = "".join(c for c, _ in to_bmes(s))
            if text in train_text:
                raise RuntimeError(f"{split} repeats a train sentence: {text}")
            if not set(text) <= train_chars:
                raise RuntimeError(f"{split} has characters unseen in train: {text}")


def main() -> None:
    """Write every sample file."""
    for task, seed_base in (("cws", 100), ("ner", 200)):
        taken: set[str] = set()
        alphabet: set[str] | None = None
        splits: dict[str, list[list[Chunk]]] = {}
        for k, (split, count) in enumerate(SIZES.items()):
            # one random stream per split, so changing one split leaves the others alone
            sents = generate(seed_base + k, count, split != "train", taken, alphabet)
            taken.update(to_segmented(s) for s in sents)
            if split == "train":
                alphabet = set("".join(taken).replace(" ", ""))
            splits[split] = sents
        check(splits)
        folder = HERE / f"sample-{task}"
        folder.mkdir(exist_ok=True)
        for split, sents in splits.items():
            if task == "cws":
                text = "".join(to_segmented(s) + "\n" for s in sents)
                (folder / f"{split}.txt").write_text(text, encoding="utf-8", newline="\n")
            else:
                blocks = ["".join(f"{c} {t}\n" for c, t in to_bmes(s)) for s in sents]
                (folder / f"{split}.bmes").write_text("\n".join(blocks), encoding="utf-8",
                                                      newline="\n")
        if task == "cws":
            raw = [to_segmented(s).replace(" ", "") for s in splits["test"]]
            raw.insert(len(raw) // 2, "")  # predict must keep empty lines in place
            (folder / "raw.txt").write_text("\n".join(raw) + "\n", encoding="utf-8", newline="\n")


if __name__ == "__main__":
    main()
