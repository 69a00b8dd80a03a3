import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import model.text as text_module
from model.text import PLACEHOLDERS, clean, keywords, normalise, scrub, segment


def test_pii_is_scrubbed_before_storage():
    s = scrub("电话 13812345678 或 +86 138-1234-5678, 邮箱 li.lei@example.com, 身份证 11010519491231002X")
    assert "1381234" not in s and "example.com" not in s and "11010519491231002X" not in s
    assert s.count("<PHONE>") == 2 and "<EMAIL>" in s and "<ID>" in s
    assert scrub("iPhone 15 Pro 256GB") == "iPhone 15 Pro 256GB"  # product numbers stay


def test_normalise_folds_width_and_case_and_clean_bounds_length():
    assert normalise("ＡＢＣ　１２３  Hello") == "abc 123 hello"
    assert normalise("a\u200bb\u200c c\u200d\u2060\ufeffd") == "ab cd"  # zero-width chars go
    assert len(clean("长" * 2000, max_chars=512)) == 512


def test_segment_and_keywords():
    assert segment("三体 全集 刘慈欣 科幻小说") == ("三体", "全集", "刘慈欣", "科幻小说")
    kw = keywords([segment("三体 刘慈欣 的 科幻小说"), segment("三体 全集"), ["非常", "三体"]], k=2)
    assert kw[0] == "三体" and "的" not in kw and "非常" not in kw


def test_importing_text_preprocessing_does_not_import_torch():
    code = "import model.text, model.profile, model.taxonomy, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- PII scrubbing: forms, false positives, placeholders, bounds, linear time ---------------------

ZW = "\u200b\u200c\u200d\u2060\ufeff"
PII_EXAMPLES = [
    ("138.1234.5678", "<PHONE>"),
    ("138 1234 5678", "<PHONE>"),
    ("1\u200b3\u200b8\u200b1\u200b2\u200b3\u200b4\u200b5\u200b6\u200b7\u200b8", "<PHONE>"),
    ("1\u200c3\u200d8\u20601\ufeff2345678", "<PHONE>"),
    ("+86 138-1234-5678", "<PHONE>"),
    ("(+86)13812345678", "<PHONE>"),
    ("+1 415 555 2671", "<PHONE>"),
    ("+44 20 7946 0958", "<PHONE>"),
    ("110101 19900307 1234", "<ID>"),
    ("110101199003071234", "<ID>"),
    ("11010119900307123X", "<ID>"),
    ("110101900307123", "<ID>"),
    ("user@localhost", "<EMAIL>"),
    ("first.last+tag@sub.example.co.uk", "<EMAIL>"),
    ("user@[127.0.0.1]", "<EMAIL>"),
    ("张三@例子.中国", "<EMAIL>"),
    ("13812345678@163.com", "<EMAIL>"),
    ("user (at) example.com", "<EMAIL>"),
    ("user[at]example[dot]com", "<EMAIL>"),
]


@pytest.mark.parametrize("pii, token", PII_EXAMPLES)
def test_each_pii_form_is_scrubbed_and_the_text_around_it_kept(pii, token):
    assert scrub(f"联系 {pii} 谢谢") == f"联系 {token} 谢谢"
    assert clean(f"联系 {pii} 谢谢") == f"联系 {token} 谢谢"  # also after normalise (lower case, no ZW)


def test_pii_next_to_chinese_takes_no_chinese_with_it():
    assert scrub("邮箱li.lei@example.com请联系") == "邮箱<EMAIL>请联系"
    assert scrub("电话13812345678或13912345678") == "电话<PHONE>或<PHONE>"
    assert scrub("13812345678 13912345678") == "<PHONE> <PHONE>"
    assert clean("手机：１３８　１２３４　５６７８") == "手机:<PHONE>"  # full-width digits and spaces


@pytest.mark.parametrize("text", [
    "价格 89.00 元", "2026 年", "ISBN 9787536692930", "ISBN 978-7-5366-9293-0", "iPhone 15 Pro 256GB",
    "订单 202603071234567890", "3.1415926535897932", "10 20 30 40 50 60 70 80 90", "@bob 你好", "a@b",
    "meet at home dot com", "v1.2.3 build 2026-03-07 13:45",
])
def test_ordinary_numbers_and_text_are_kept(text):
    assert scrub(text) == text


def test_placeholders_never_reach_segment_or_keywords():
    assert PLACEHOLDERS == ("<EMAIL>", "<ID>", "<PHONE>")
    text = clean("电话 13812345678 邮箱 a@b.com 身份证 110101199003071234 phone case")
    assert text == "电话 <PHONE> 邮箱 <EMAIL> 身份证 <ID> phone case"
    tokens = segment(text)
    assert tokens == ("电话", "邮箱", "身份证", "phone", "case")  # the real word "phone" stays
    # Whatever jieba would make of a placeholder (any case, glued to text) never comes out.
    for p in PLACEHOLDERS:
        for glued in (p, p.lower(), f"三体{p}全集", f"{p}{p}"):
            assert not set(segment(glued)) & {p, p.lower(), p[1:-1], p[1:-1].lower(), "<", ">"}
    fragments = [list(PLACEHOLDERS), [p[1:-1] for p in PLACEHOLDERS], ["<", ">", "<PHONE", "PHONE>"]]
    kw = keywords(fragments * 5 + [["三体"]], k=20)
    assert kw == ["三体"]


def test_clean_cuts_before_scrubbing_and_never_leaves_part_of_a_placeholder(monkeypatch):
    long = "长文 13812345678 li@example.com " * 4000  # ~120k chars
    start = time.perf_counter()
    out = clean(long, max_chars=512)
    assert time.perf_counter() - start < 0.5
    assert len(out) <= 512 and "138" not in out and "@" not in out
    seen = []
    monkeypatch.setattr(text_module, "scrub", lambda t: seen.append(len(t)) or scrub(t))
    assert clean("a" * 100_000, max_chars=512) == "a" * 512 and max(seen) < 2_000  # not 100k
    monkeypatch.undo()
    for n in range(40):  # every cut point through a placeholder
        out = clean("长" * 10 + " 13812345678 li@example.com 110101199003071234", max_chars=10 + n)
        assert len(out) <= 10 + n and "1381" not in out and "@" not in out
        assert not {"PHONE", "EMAIL", "ID", "PH", "PHO", "PHON", "EM", "EMA", "EMAI"} & set(segment(out))
    # Placeholders shrink the scrubbed window (28 chars -> 8 an address), pulling its end, where
    # the cut split an address, forward into the result: clean must scrub further, not leak it.
    out = clean("li.lei.abcdefgh@example.com " * 60 + "13812345678", max_chars=400)
    assert out == ("<EMAIL> " * 50)[:400]


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(st.sampled_from(list("0123456789 .-+()@a[]x张<>" + ZW)) | st.characters(exclude_categories=()),
               max_size=200), st.integers(0, 100))
def test_scrub_and_clean_take_any_str(text, n):
    assert isinstance(scrub(text), str)
    assert len(clean(text, max_chars=n)) <= n


def test_scrub_takes_lone_surrogates():
    raw = b"\xff\xfe tel 13812345678 \xed\xa0\x80 li@example.com".decode("utf-8", errors="surrogateescape")
    assert scrub(raw) == "\udcff\udcfe tel <PHONE> \udced\udca0\udc80 <EMAIL>"
    assert scrub("\ud800@\udfff") == "\ud800@\udfff"
    assert "<PHONE>" in clean("\ud800 13812345678")


ADVERSARIAL = {
    "word run": lambda n: "a" * n,
    "a.a.": lambda n: "a." * (n // 2),
    "a@a@": lambda n: "a@" * (n // 2),
    "a@a.a": lambda n: "a@a.a" * (n // 5),
    "dots then @": lambda n: ("a." * 50 + "@") * (n // 101),
    "@ then long domain": lambda n: "a@" + "b" * n,
    "(at)": lambda n: "a(at)" * (n // 5),
    "cjk@": lambda n: "张@" * (n // 2),
    "digits": lambda n: "1" * n,
    "digits@": lambda n: "1" * n + "@",
    "1 1 1": lambda n: "1 " * (n // 2),
    "1-1-1": lambda n: "1-" * (n // 2),
    "1.1.1": lambda n: "1." * (n // 2),
    "+1 +1": lambda n: "+1 " * (n // 3),
    "zero-width": lambda n: "".join("1" + ZW[i % 5] for i in range(n // 2)),
    "mixed separators": lambda n: ("1\u200b3 8-1.2" + ZW) * (n // 14),
    "near-IDs": lambda n: "110101 19900307 123 " * (n // 20),
}


def _best_of(texts, runs=5, clock=time.perf_counter):
    """The fastest of `runs` scrubs of each text, interleaved so that load on the machine hits all alike."""
    best = [float("inf")] * len(texts)
    for _ in range(runs):
        for i, text in enumerate(texts):
            start = clock()
            scrub(text)
            best[i] = min(best[i], clock() - start)
    return best


@pytest.mark.parametrize("shape", ADVERSARIAL)
def test_scrub_is_linear_time_on_adversarial_input(shape):
    small, large = ADVERSARIAL[shape](16 * 1024), ADVERSARIAL[shape](64 * 1024)
    (wall,) = _best_of([large], runs=3)
    assert wall < 0.5, f"{shape}: {wall:.3f} s for 64 KB"
    # 4x the input: ~4x the time if linear, 16x if quadratic. CPU time, so that time spent waiting
    # for a core on a busy machine is not counted; the floor keeps sub-millisecond noise out.
    t_small, t_large = _best_of([small, large], clock=time.process_time)
    assert t_large < 8 * max(t_small, 0.001), f"{shape}: {t_small * 1e3:.1f} ms -> {t_large * 1e3:.1f} ms"
