import subprocess
import sys

from model.text import clean, keywords, normalise, scrub, segment


def test_pii_is_scrubbed_before_storage():
    s = scrub("电话 13812345678 或 +86 138-1234-5678, 邮箱 li.lei@example.com, 身份证 11010519491231002X")
    assert "1381234" not in s and "example.com" not in s and "11010519491231002X" not in s
    assert s.count("<PHONE>") == 2 and "<EMAIL>" in s and "<ID>" in s
    assert scrub("iPhone 15 Pro 256GB") == "iPhone 15 Pro 256GB"  # product numbers stay


def test_normalise_folds_width_and_case_and_clean_bounds_length():
    assert normalise("ＡＢＣ　１２３  Hello") == "abc 123 hello"
    assert len(clean("长" * 2000, max_chars=512)) == 512


def test_segment_and_keywords():
    assert segment("三体 全集 刘慈欣 科幻小说") == ("三体", "全集", "刘慈欣", "科幻小说")
    kw = keywords([segment("三体 刘慈欣 的 科幻小说"), segment("三体 全集"), ["非常", "三体"]], k=2)
    assert kw[0] == "三体" and "的" not in kw and "非常" not in kw


def test_importing_text_preprocessing_does_not_import_torch():
    code = "import model.text, model.profile, model.taxonomy, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
