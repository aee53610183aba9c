"""Generate the bundled sample corpora (synthetic, written by the bmes_tagger authors).

    python data/make_samples.py

Writes data/sample-cws/{train,dev,test}.txt (segmented, two spaces between words),
data/sample-cws/raw.txt (the test sentences unsegmented, for `tagger predict`), and
data/sample-ner/{train,dev,test}.bmes (one `CHAR TAG` per line, PER/LOC/ORG). Deterministic.

Sentences come from templates over a hand-written lexicon. Segmentation follows the PKU
convention (surname and given name are separate words; an organisation is its place name plus
its kind, e.g. 北京  大学). Person names, some place names and some nouns are held out of the
training split, so dev/test have out-of-vocabulary words built from known characters.
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "蒋", "蔡", "余", "欧阳", "司马", "诸葛"]
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚英华玉萍红鹏飞建国文辉宇浩凯佳欣雪梅琳晨阳"
             "海波宁志鑫晓东思雨婷昊天瑞博立新春秋嘉泽子怡诗涵")
CITIES = ["北京", "上海", "天津", "重庆", "广州", "深圳", "南京", "杭州", "武汉", "成都", "西安", "长沙", "沈阳", "济南", "青岛", "大连", "厦门", "福州", "昆明", "贵阳", "南宁", "兰州", "合肥", "郑州", "太原", "苏州", "无锡", "宁波", "哈尔滨", "石家庄"]
PROVINCES = ["河北", "山西", "辽宁", "吉林", "江苏", "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "云南", "陕西", "甘肃", "青海"]
LOC_STEMS = list("东西南北清平安宁新华长山河阳江湖石桥溪林丰泉云龙")
LOC_KINDS = ("县", "镇", "村", "区")
ABBREVS = list("京沪津渝粤苏浙鲁")  # one-character place names (S-LOC)
ORG_KINDS = ["大学", "银行", "公司", "医院", "研究所", "委员会", "电视台", "集团", "中学", "图书馆", "出版社", "博物馆"]
ORG_STEMS = ["华夏", "长城", "东方", "光明", "人民", "中华", "新华", "黄河", "长江", "阳光", "未来", "科技"]
NOUNS = ["经济", "技术", "市场", "企业", "问题", "政府", "人民", "社会", "国家", "文化", "教育", "科技", "产品", "项目", "计划", "服务", "资金", "农民", "学生", "老师", "记者", "工人", "城市", "农村", "环境", "历史", "世界", "生活", "水平", "政策", "合作", "网络", "数据", "公路", "铁路", "医疗", "新闻", "报告", "作品", "比赛", "球队", "朋友", "孩子", "工程", "设备", "能源", "交通", "旅游", "农业", "工业", "资源", "人才", "质量", "法律", "体育", "艺术", "音乐", "电影", "书籍", "会议", "活动", "方案", "标准", "价格", "收入", "消费", "投资", "出口", "水利", "粮食"]
VERBS = ["发展", "建设", "访问", "参加", "举行", "召开", "发布", "提出", "支持", "推动", "加强", "完成", "研究", "学习", "介绍", "组织", "参观", "讨论", "解决", "改善", "提高", "扩大", "保护", "开发", "调查", "考察", "签署", "启动", "实施", "推广", "关注", "欢迎"]
SAY = ["表示", "认为", "指出", "强调", "介绍", "说"]
ADJS = ["新", "重要", "主要", "良好", "积极", "全面", "美好", "巨大", "先进", "优秀", "基本", "稳定", "重大", "传统", "现代"]
ADVS = ["已经", "正在", "将", "也", "都", "还", "不断", "进一步", "共同", "继续", "首次", "再次"]
TITLES = ["教授", "经理", "主任", "记者", "院长", "校长", "工程师", "市长", "局长", "医生", "董事长", "研究员"]
TIMES = ["今年", "去年", "明年", "昨天", "今天", "上午", "下午", "近日", "目前", "最近", "本月", "年初"]
NUMS = ["一", "两", "三", "四", "五", "六", "七", "八", "九", "十", "二十", "三十", "五十", "一百", "几", "数"]
MEASURES = ["个", "位", "家", "项", "次", "名", "座", "条", "批", "所"]
PERCENT = ["百分之五", "百分之十", "百分之二十", "百分之三十", "一倍", "两倍"]
DATES = ["一九九八年", "二○○一年", "二○○五年", "一月", "三月", "五月", "十月", "十二月", "一日", "八日", "十五日", "三十日"]
FUNCTION = {"的", "了", "在", "和", "与", "对", "为", "是", "有", "把", "被", "从", "向", "据"}

Chunk = tuple[list[str], str | None]  # words, entity type (None: not an entity)


class Lexicon:
    """Word pools; the training lexicon lacks some nouns, places and name characters."""

    def __init__(self, rng: random.Random, held_out: bool) -> None:
        self.rng = rng
        split = random.Random(7)  # the same held-out items for every split
        self.nouns = list(NOUNS)
        self.given = list(GIVEN)
        self.loc_stems = list(LOC_STEMS)
        held_nouns = set(split.sample(NOUNS, len(NOUNS) // 7))
        held_given = set(split.sample(GIVEN, len(GIVEN) // 6))
        if not held_out:
            self.nouns = [n for n in NOUNS if n not in held_nouns]
            self.given = [g for g in GIVEN if g not in held_given]
        else:  # dev/test favour the held-out items so OOV words are common enough to measure
            self.nouns = list(NOUNS) + sorted(held_nouns) * 2
            self.given = list(GIVEN) + sorted(held_given) * 2

    def pick(self, pool: list[str] | tuple[str, ...]) -> str:
        return self.rng.choice(pool)

    def person(self) -> Chunk:
        given = "".join(self.rng.choice(self.given) for _ in range(self.rng.choice((1, 2, 2))))
        return [self.pick(SURNAMES), given], "PER"

    def place(self) -> Chunk:
        r = self.rng.random()
        if r < 0.45:
            return [self.pick(CITIES)], "LOC"
        if r < 0.7:
            return [self.pick(PROVINCES) + self.rng.choice(("", "省"))], "LOC"
        stem = "".join(self.rng.sample(self.loc_stems, 2))
        return [stem + self.pick(LOC_KINDS)], "LOC"

    def org(self) -> Chunk:
        head = self.place()[0] if self.rng.random() < 0.6 else [self.pick(ORG_STEMS)]
        return [*head, self.pick(ORG_KINDS)], "ORG"

    def abbrev(self) -> Chunk:
        return [self.pick(ABBREVS)], "LOC"


def w(*words: str) -> Chunk:
    return list(words), None


def sentence(lex: Lexicon) -> list[Chunk]:
    """One sentence from a randomly chosen template."""
    r = lex.rng
    n, v, a, adv = (lambda: lex.pick(lex.nouns)), (lambda: lex.pick(VERBS)), \
        (lambda: lex.pick(ADJS)), (lambda: lex.pick(ADVS))
    templates = [
        lambda: [w(lex.pick(TIMES)), lex.person(), w("在"), lex.place(), w(v(), "了", a(), n()),
                 w("。")],
        lambda: [lex.org(), w(adv(), v(), n(), "，"), lex.person(), w(lex.pick(SAY), "：", "“"),
                 w(n(), "的", n(), adv(), v(), "。", "”")],
        lambda: [lex.person(), w("是"), lex.org(), w("的", lex.pick(TITLES), "。")],
        lambda: [lex.place(), w("的", n(), adv(), v(), "，", n(), "也", v(), "了", "。")],
        lambda: [lex.person(), w("和"), lex.person(), w(lex.pick(TIMES), "从"), lex.place(),
                 w("来到"), lex.place(), w("，", v(), "当地", "的", n(), "。")],
        lambda: [lex.org(), w("与"), lex.org(), w("在"), lex.place(), w("举行", n(), "会议", "。")],
        lambda: [w("据"), lex.org(), w(lex.pick(SAY), "，"), lex.place(),
                 w(lex.pick(TIMES), "的", n(), "增长", "了", lex.pick(PERCENT), "。")],
        lambda: [lex.abbrev(), w("、"), lex.abbrev(), w("两", "地", "的", n(), adv(), v(), "。")],
        lambda: [w("“", n(), a(), "！", "”"), lex.person(), w(lex.pick(SAY), "。")],
        lambda: [w(lex.pick(NUMS), lex.pick(MEASURES), n(), v(), "了"), lex.place(),
                 w("的", n(), "。")],
        lambda: [w(lex.pick(DATES), lex.pick(DATES), "，"), lex.person(), w("在"), lex.org(),
                 w(v(), n(), "，", "并", v(), "了", a(), n(), "。")],
        lambda: [lex.person(), w(lex.pick(TITLES), adv(), v(), "，"), lex.org(),
                 w("将", v(), lex.pick(NUMS), lex.pick(MEASURES), a(), n(), "。")],
    ]
    chunks = r.choice(templates)()
    if r.random() < 0.25:  # a second clause makes lengths vary
        extra = r.choice(templates)()
        chunks = [c for c in chunks if c[0] != ["。"]]
        if chunks and chunks[-1][0][-1:] == ["。"]:
            chunks[-1] = (chunks[-1][0][:-1], chunks[-1][1])
        chunks = [*chunks, w("，"), *extra]
    return chunks


def to_segmented(chunks: list[Chunk]) -> str:
    return "  ".join(word for words, _ in chunks for word in words if word)


def to_bmes(chunks: list[Chunk]) -> list[tuple[str, str]]:
    rows = []
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


def generate(seed: int, count: int, held_out: bool, exclude: set[str]) -> list[list[Chunk]]:
    lex = Lexicon(random.Random(seed), held_out)
    out: list[list[Chunk]] = []
    seen = set(exclude)
    while len(out) < count:
        chunks = sentence(lex)
        key = to_segmented(chunks)
        if key in seen or not 6 <= len(key.replace(" ", "")) <= 60:
            continue
        seen.add(key)
        out.append(chunks)
    return out


def main() -> None:
    sizes = {"train": 500, "dev": 80, "test": 80}
    for task, seed_base in (("cws", 100), ("ner", 200)):
        taken: set[str] = set()
        splits = {}
        for k, (split, count) in enumerate(sizes.items()):
            sents = generate(seed_base + k, count, held_out=split != "train", exclude=taken)
            taken.update(to_segmented(s) for s in sents)
            splits[split] = sents
        folder = HERE / f"sample-{task}"
        folder.mkdir(exist_ok=True)
        for split, sents in splits.items():
            if task == "cws":
                text = "".join(to_segmented(s) + "\n" for s in sents)
                (folder / f"{split}.txt").write_text(text, encoding="utf-8")
            else:
                blocks = ["".join(f"{c} {t}\n" for c, t in to_bmes(s)) for s in sents]
                (folder / f"{split}.bmes").write_text("\n".join(blocks), encoding="utf-8")
        if task == "cws":
            raw = [to_segmented(s).replace(" ", "") for s in splits["test"]]
            raw.insert(len(raw) // 2, "")  # predict must keep empty lines
            (folder / "raw.txt").write_text("\n".join(raw) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
