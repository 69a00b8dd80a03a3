"""The profile page: the per-user trail, the rendering (escaping, bars, the chart's series), and the
page in headless Chromium on a real worker, with and without the token."""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from chromium import Chromium

from model.documents import (
    PROFILE_SCHEMA,
    RECOMMENDATIONS_SCHEMA,
    Profile,
    Recommendations,
    encode,
)
from model.serve import Profiled
from model.taxonomy import Taxonomy
from ops.clients import producer, publish_events, publish_items
from state.event import iso_ms
from state.trail import TRAIL_VERSIONS, Trail, TrailPoint, TrailStore
from streams import trails
from streams.page import CHART_TOP, message_page, profile_page
from streams.settings import Settings
from streams.topics import partition_for
from streams.views import UNAUTHORIZED

ARTEFACT = Path(__file__).resolve().parent.parent / ".artifacts" / "profile-page.png"
HOSTILE = '<img src=x onerror="alert(1)">&\'"'
NOW_MS = 1_790_000_000_000


def profile(version: int, top: dict[str, list[tuple[str, float]]], user: str = "u1",
            keywords: dict[str, list[str]] | None = None, inferred: float = 0.0) -> dict:
    """A profile document as the worker publishes it (validated by its model)."""
    layers = {layer: {"top": [{"label": label, "p": p} for label, p in labels],
                      "rest": round(1 - sum(p for _, p in labels), 6), "inferred": inferred}
              for layer, labels in top.items()}
    return Profile.model_validate({
        "schema_version": PROFILE_SCHEMA, "user_id": user, "version": version, "model_version": "baseline-1",
        "updated_at": iso_ms(NOW_MS + version * 60_000), "events_seen": 3 * version,
        "window": {"events": 3 * version, "from": iso_ms(NOW_MS), "to": iso_ms(NOW_MS + version * 60_000)},
        "layers": layers, "keywords": keywords or {layer: [] for layer in top},
    }).model_dump(by_alias=True)


def recommendations(user: str, version: int, items: list[tuple[str, str]]) -> dict:
    return Recommendations.model_validate({
        "schema_version": RECOMMENDATIONS_SCHEMA, "user_id": user, "profile_version": version,
        "model_version": "baseline-1",
        "items": [{"item_id": item, "score": 0.5, "layer": "surface", "reason": reason, "source": "interest"}
                  for item, reason in items]}).model_dump()


def same_top(labels: list[tuple[str, float]]) -> dict[str, list[tuple[str, float]]]:
    return {layer: labels for layer in ("surface", "middle", "deep")}


# --- the trail ---------------------------------------------------------------------------------

def test_trail_keeps_the_last_versions_of_each_user_with_their_latest_recommendations():
    store = TrailStore({})
    for v in range(1, TRAIL_VERSIONS + 6):
        doc = profile(v, same_top([("a", 0.5), ("b", round(0.01 * v, 2))]))
        store.record("u1", v, encode(doc), encode(recommendations("u1", v, [("i1", "why")])))
    store.record("u1\x00", 1, encode(profile(1, same_top([("c", 0.9)]), user="u1\x00")),
                 encode(recommendations("u1\x00", 1, [])))

    trail = store.load("u1")
    assert [p.version for p in trail.points] == list(range(6, TRAIL_VERSIONS + 6))
    assert trail.points[-1] == TrailPoint(TRAIL_VERSIONS + 5, iso_ms(NOW_MS + (TRAIL_VERSIONS + 5) * 60_000),
                                          same_top([("a", 0.5), ("b", 0.25)]))
    assert trail.recommendations["profile_version"] == TRAIL_VERSIONS + 5
    assert len(store.store) == TRAIL_VERSIONS + 2 + 3  # u1: its versions, their list, recommendations; and u1\x00
    other = store.load("u1\x00")  # a user id that starts with another's keeps its own trail
    assert [p.version for p in other.points] == [1] and other.recommendations["items"] == []
    assert store.load("nobody") == Trail([], None)


def test_trail_through_adds_the_current_profile_only_when_it_was_not_recorded_here():
    recorded = [TrailPoint.of(profile(v, same_top([("a", 0.5)]))) for v in (3, 4)]
    assert [p.version for p in Trail(recorded, None).through(profile(4, same_top([("a", 0.5)])))] == [3, 4]
    assert [p.version for p in Trail(recorded, None).through(profile(9, same_top([("b", 0.6)])))] == [3, 4, 9]
    assert [p.version for p in Trail([], None).through(profile(9, same_top([("b", 0.6)])))] == [9]


class Full(dict):
    """A store on a full disk."""

    def __setitem__(self, key, value):
        raise OSError(28, "No space left on device")


def test_recording_the_trail_in_rocksdb_never_raises_into_the_profiler(tmp_path, caplog):
    doc = profile(1, same_top([("茶饮", 0.7)]))
    done = Profiled("u1", 1, encode(doc), encode(recommendations("u1", 1, [])))
    broken = Settings(data_dir=tmp_path / "broken")
    trails.trail_store(broken).store = Full()
    with caplog.at_level(logging.ERROR, logger="streams.trails"):
        trails.record(broken, done)
    assert "recording the profile page's trail failed" in caplog.text and "No space left" in caplog.text

    settings = Settings(data_dir=tmp_path / "worker")
    trails.record(settings, done)
    assert trails.trail_store(settings).load("u1").points == [TrailPoint.of(doc)]
    assert (tmp_path / "worker" / "trails").is_dir()


# --- the rendering -----------------------------------------------------------------------------

@dataclass(eq=False)  # found by identity
class Element:
    tag: str
    attrs: dict
    parents: tuple[int, ...]  # indices of the enclosing elements
    chunks: list = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


class Elements(HTMLParser):
    """Every element of a page in document order, with its own text and its ancestors."""

    VOID = {"meta"}  # never closed (self-closed SVG elements are closed by HTMLParser)

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.found: list[Element] = []
        self.open: list[int] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append(Element(tag, dict(attrs), tuple(self.open)))
        if tag not in self.VOID:
            self.open.append(len(self.found) - 1)

    def handle_endtag(self, tag):
        while self.open and self.found[self.open.pop()].tag != tag:
            pass

    def handle_data(self, data):
        if self.open:
            self.found[self.open[-1]].chunks.append(data)

    def all(self, tag: str, within: Element | None = None, **attrs) -> list[Element]:
        """Elements `tag` (inside `within`) whose attributes equal `attrs` (class_ is class, data_x is data-x)."""
        scope = None if within is None else self.found.index(within)
        return [e for e in self.found if e.tag == tag and (scope is None or scope in e.parents)
                and all(e.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())]

    def one(self, tag: str, within: Element | None = None, **attrs) -> Element:
        [element] = self.all(tag, within, **attrs)
        return element


def test_the_page_escapes_every_string_a_producer_can_reach():
    hostile_top = [(HOSTILE + "label", 0.4), ("</style><b>x</b>", 0.3)]
    keywords = [HOSTILE + "kw", "<script>alert(2)</script>"]
    doc = profile(2, same_top(hostile_top), user=HOSTILE,
                  keywords={layer: keywords for layer in ("surface", "middle", "deep")})
    recs = recommendations(HOSTILE, 2, [(HOSTILE + "item", HOSTILE + "reason")])
    page = Elements(profile_page(doc, Trail([TrailPoint.of(profile(1, same_top(hostile_top), user=HOSTILE))], recs)))

    tags = {e.tag for e in page.found}
    assert not tags & {"script", "img", "a", "b", "iframe", "object"}, tags
    assert not any(k.startswith("on") or k == "href" for e in page.found for k in e.attrs)
    assert page.one("h1").text == HOSTILE and page.one("title", page.one("head")).text == f"Strata · {HOSTILE}"
    assert [e.text for e in page.all("code")] == [HOSTILE + "item"]
    assert HOSTILE + "reason" in [e.text for e in page.all("td")]
    surface = page.one("article", id="layer-surface")
    assert [e.text for e in page.all("li", page.one("ul", surface, class_="keywords"))] == keywords
    assert [e.attrs["data-label"] for e in page.all("div", surface) if "data-label" in e.attrs][:2] == \
        [label for label, _ in hostile_top]
    assert [e.attrs["data-label"] for e in page.all("g", surface, class_="series")] == \
        [label for label, _ in hostile_top]
    assert len(page.all("style")) == 1  # the label's </style> did not end the style sheet


def test_the_page_shows_each_layer_as_bars_with_rest_and_inferred_share():
    top = {"surface": [("科幻小说", 0.62), ("电影", 0.2), ("茶饮", 0.1)],
           "middle": [("阅读", 0.7), ("影视", 0.25)],
           "deep": [("文娱", 0.9)]}
    doc = profile(5, top, inferred=0.25, keywords={"surface": ["三体", "刘慈欣"], "middle": ["三体"], "deep": []})
    page = Elements(profile_page(doc, Trail([], None)))
    for layer, labels in top.items():
        card = page.one("article", id=f"layer-{layer}")
        bars = [e for e in page.all("div", card) if "data-label" in e.attrs]
        assert [b.attrs["data-label"] for b in bars] == [label for label, _ in labels] + ["other labels", "share"]
        assert bars[-2].attrs["class"] == "bar rest" and bars[-1].attrs["class"] == "bar inferred"
        widths = [float(re.match(r"width:([\d.]+)%", e.attrs["style"]).group(1))
                  for e in page.all("span", card, class_="fill")]
        rest = doc["layers"][layer]["rest"]
        assert widths == pytest.approx([100 * p for _, p in labels] + [100 * rest, 25.0], abs=0.01)
        shown = [e.text for e in page.all("li", card)]
        assert shown[:len(doc["keywords"][layer])] == doc["keywords"][layer]
    assert page.one("p", page.one("article", id="layer-deep"), class_="none").text == "none"  # no keywords
    assert page.one("p", page.one("section", class_="card recs"), class_="none").text == \
        "No recommendations recorded on this worker yet."
    note = page.one("p", id="trail-note").text
    assert note.startswith("No version recorded on this worker yet") and "v5" in note


def test_the_chart_draws_a_line_per_label_once_in_the_top_three_broken_at_gaps():
    # Versions 1-3 and 7-8 recorded here (4-6 by another worker); 'c' is not among the top labels at 2.
    shapes = {1: [("a", 0.5), ("b", 0.3), ("c", 0.1), ("d", 0.05)],
              2: [("b", 0.45), ("a", 0.35), ("d", 0.1)],
              3: [("b", 0.5), ("a", 0.3), ("c", 0.1), ("d", 0.02)],
              7: [("a", 0.6), ("b", 0.2), ("c", 0.1), ("d", 0.05)],
              8: [("a", 0.62), ("d", 0.2), ("c", 0.1), ("b", 0.05), ("e", 0.01)]}
    trail = Trail([TrailPoint.of(profile(v, same_top(t))) for v, t in shapes.items()], None)
    page = Elements(profile_page(profile(8, same_top(shapes[8])), trail))
    assert [e.attrs["data-layer"] for e in page.all("svg")] == ["surface", "middle", "deep"]
    chart = page.one("svg", data_layer="surface")

    series = {g.attrs["data-label"]: g for g in page.all("g", chart, class_="series")}
    # The newest version's order first; every label once among a top 3 (d only at 8, c at 1, 3 and 7),
    # and no other (e).
    assert list(series) == ["a", "d", "c", "b"]
    lines = {label: [len(e.attrs["points"].split()) for e in page.all("polyline", g)] for label, g in series.items()}
    assert lines == {"a": [3, 2], "b": [3, 2], "d": [3, 2], "c": [2]}  # the gap 3 -> 7 breaks every line
    dots = {label: len(page.all("circle", g)) for label, g in series.items()}
    assert dots == {"a": 5, "b": 5, "d": 5, "c": 4}  # c stands alone at 1 and 3
    # A dot per version at its probability (higher up is smaller y): a was 50, 35, 30, 60, 62%.
    ys = [float(e.attrs["cy"]) for e in page.all("circle", series["a"])]
    assert ys[4] < ys[3] < ys[0] < ys[1] < ys[2]
    assert [e.text for e in page.all("text", chart) if e.text.startswith("v")] == ["v1", "v2", "v3", "v7", "v8"]
    # The scale's top: the first round value above 62%.
    assert [e.text for e in page.all("text", chart) if e.text.endswith("%")] == ["0%", "40%", "80%"]
    assert page.one("p", id="trail-note").text.startswith("5 versions recorded on this worker (v1–v3, v7–v8)")
    # A charted label's bar has its line's colour; e, never in a top 3, keeps the default.
    card = page.one("article", id="layer-surface")
    fills = {bar.attrs["data-label"]: page.one("span", bar, class_="fill").attrs["style"]
             for bar in page.all("div", card, class_="bar label")}
    assert all(fills[label].endswith(f";background:{g.attrs['stroke']}") for label, g in series.items())
    assert "background" not in fills["e"] and len(set(g.attrs["stroke"] for g in series.values())) == 4


def test_message_pages_escape_their_message():
    page = Elements(message_page("No profile", f"no profile for user {HOSTILE!r} yet"))
    assert not {e.tag for e in page.found} & {"img", "script"}
    assert page.all("p")[-1].text == f"no profile for user {HOSTILE!r} yet"


# --- the page on a real worker, in headless Chromium -------------------------------------------

TOKEN = "page-secret"
USER = '<img src=x onerror="alert(1)">&页面'  # a user id is whatever a producer keys its events with
PHONE_TRICK = '"><svg onload=alert(1)>手机'  # and so is an item id

# (surface label, texts): the user's interest moves from tea to science fiction to phones, a batch at a time.
BATCHES = [("茶饮", ["西湖龙井 明前", "安吉白茶", "普洱 熟茶"]),
           ("科幻小说", ["三体 刘慈欣", "银河帝国 阿西莫夫", "基地 三部曲"]),
           ("电影", ["星际穿越 诺兰 科幻片", "流浪地球 票房"]),
           ("智能手机", ["华为 Mate 骁龙", "小米 新款手机", "苹果 iPhone"])]

DOM = """(() => {
  const text = e => e ? e.textContent : null;
  const layers = {};
  for (const card of document.querySelectorAll('article.layer')) {
    layers[card.id.replace('layer-', '')] = {
      bars: [...card.querySelectorAll('.bar')].map(b => ({label: b.dataset.label,
        share: b.querySelector('.fill').getBoundingClientRect().width
               / b.querySelector('.track').getBoundingClientRect().width})),
      series: [...card.querySelectorAll('svg.chart g.series')].map(g => ({label: g.dataset.label,
        lines: [...g.querySelectorAll('polyline')].map(p => [p.points.numberOfItems, p.getTotalLength()]),
        dots: g.querySelectorAll('circle').length})),
      versions: [...card.querySelectorAll('svg.chart > text')].map(text).filter(t => t.startsWith('v')),
      keywords: [...card.querySelectorAll('.keywords li')].map(text)};
  }
  return {user: text(document.querySelector('h1')), title: document.title, layers,
          items: [...document.querySelectorAll('.recs tbody tr')].map(tr => text(tr.cells[1])),
          note: text(document.getElementById('trail-note')), images: document.images.length,
          scripts: document.scripts.length, svgs: document.querySelectorAll('svg').length};
})()"""


def events_of(tax: Taxonomy, batch: int, start_ms: int) -> list[dict]:
    surface, texts = BATCHES[batch]
    return [{"event_id": f"page-{batch}-{i}", "user_id": USER, "type": "browse", "ts": iso_ms(start_ms + i * 60_000),
             "text": text, "categories": tax.path(surface)} for i, text in enumerate(texts)]


def profile_covering(worker, events: int) -> dict:
    """The user's profile once it covers `events` events (fetched as JSON, with the token)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, body = worker.get(f"/profiles/{quote(USER, safe='')}", headers={"Authorization": f"Bearer {TOKEN}"})
        if status == 200 and json.loads(body)["events_seen"] == events:
            return json.loads(body)
        time.sleep(0.2)
    raise AssertionError(f"no profile covering {events} events after 30 s:\n{worker.log_tail()}")


@pytest.mark.broker
@pytest.mark.timeout(120)
def test_profile_page_in_headless_chromium(cluster, tmp_path):
    tax = Taxonomy.load()
    catalogue = [{"item_id": f"{surface}-{i}", "title": f"{surface} {i}", "categories": tax.path(surface)}
                 for surface, _ in BATCHES for i in range(2)]
    trick = {"item_id": PHONE_TRICK, "title": "手机", "categories": tax.path("智能手机")}
    publish_items(cluster.settings, [*catalogue, trick])
    worker = cluster.worker(env={"STRATA_HTTP_TOKEN": TOKEN})
    worker.wait_ready(timeout=30)
    p = producer(cluster.settings.broker_info())
    start_ms, seen = int(time.time() * 1000) - 3 * 3600_000, 0
    for batch in range(len(BATCHES)):  # one batch at a time: a profile version or more each
        events = events_of(tax, batch, start_ms + batch * 600_000)
        seen += publish_events(p, cluster.settings, events)
        latest = profile_covering(worker, seen)
    assert latest["version"] >= len(BATCHES)
    recs = [json.loads(r.value) for r in cluster.records("recommendations") if r.key.decode() == USER]
    assert recs[-1]["profile_version"] == latest["version"] and PHONE_TRICK in [r["item_id"] for r in recs[-1]["items"]]

    url = f"{worker.url}/ui/users/{quote(USER, safe='')}"
    with Chromium(tmp_path / "chromium") as browser:
        tab = browser.load(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert tab.status == 200
        dom = tab.evaluate(DOM)
        png = tab.screenshot()
        (tmp_path / "profile-page.png").write_bytes(png)
        ARTEFACT.parent.mkdir(exist_ok=True)
        ARTEFACT.write_bytes(png)
        refused = browser.load(url)
        assert refused.status == 401 and UNAUTHORIZED in refused.evaluate("document.body.textContent")

    # Hostile ids are shown as text, not markup: no image, no script, only the three charts.
    assert dom["user"] == USER and dom["title"] == f"Strata · {USER}"
    assert (dom["images"], dom["scripts"], dom["svgs"]) == (0, 0, 3)
    assert list(dom["layers"]) == ["surface", "middle", "deep"]
    for layer, shown in dom["layers"].items():
        top = latest["layers"][layer]
        assert [b["label"] for b in shown["bars"]] == [x["label"] for x in top["top"]] + ["other labels", "share"]
        wanted = [x["p"] for x in top["top"]] + [top["rest"], top["inferred"]]
        assert [b["share"] for b in shown["bars"]] == pytest.approx(wanted, abs=0.01), layer  # drawn to scale
        assert {x["label"] for x in top["top"][:CHART_TOP]} <= {s["label"] for s in shown["series"]}, layer
        assert all(s["dots"] >= 1 for s in shown["series"])
        # Every version was recorded on this worker: the newest top labels have lines, drawn.
        lines = [line for s in shown["series"] if s["label"] == top["top"][0]["label"] for line in s["lines"]]
        assert lines and all(n >= 2 and length > 0 for n, length in lines), (layer, shown["series"])
        assert shown["versions"][0] == "v1" and shown["versions"][-1] == f"v{latest['version']}"
        assert shown["keywords"] == latest["keywords"][layer]
    assert dom["items"] == [r["item_id"] for r in recs[-1]["items"]]
    assert dom["note"].startswith(f"{latest['version']} versions recorded on this worker (v1–v{latest['version']})")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, body = worker.get(f"/ui/users/{quote('no<body>', safe='')}", headers=auth)
    assert status == 404 and "no profile for user 'no<body>' yet" in unescape(body.decode())
    assert "no<body>" not in body.decode()
    assert worker.get("/ui/users/" + "u" * 129, headers=auth)[0] == 400
    assert worker.get(f"/ui/users/{quote(USER, safe='')}/", headers={"Authorization": "Bearer wrong"})[0] == 401
    log = worker.log_path.read_text(errors="replace")
    assert "trails: recording" not in log and "profile page:" not in log  # no error on either side

    # Someone else's record on the profiles topic, which the restarted worker restores into its table.
    raw = producer(cluster.settings.broker_info(), restorable=True)
    raw.send(cluster.settings.topic("profiles"), key=b"broken", value=b'{"user_id": "broken"}',
             partition=partition_for(b"broken", cluster.settings.partitions))
    raw.flush()

    # The trail is on disk: a restarted worker (same data dir) still shows every version.
    worker.stop()
    again = cluster.worker(env={"STRATA_HTTP_TOKEN": TOKEN})
    again.wait_ready(timeout=30)
    status, body = again.get(f"/ui/users/{quote(USER, safe='')}", headers=auth, timeout=10)
    note = Elements(body.decode()).one("p", id="trail-note").text
    assert status == 200 and note.startswith(f"{latest['version']} versions recorded on this worker"), note
    # A page that cannot be made is a 500 and a log line; the worker serves on.
    status, body = again.get("/ui/users/broken", headers=auth, timeout=10)
    assert status == 500 and "could not be made" in body.decode()
    assert "profile page: the page of a user failed" in again.log_path.read_text(errors="replace")
    assert again.get(f"/ui/users/{quote(USER, safe='')}", headers=auth, timeout=10)[0] == 200
