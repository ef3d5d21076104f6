"""The feature browser in a real headless Chromium: the page opened from disk, its rendered DOM checked."""

from __future__ import annotations

import html
import re
import sys

import pytest
from browser_helpers import screen_table, small_stats, sweep_records
from chromium import dump_dom, find_chromium

from interp_sot.browser import write_browser
from interp_sot.io import append_jsonl
from interp_sot.screening.pick import pick_order
from interp_sot.screening.score_store import ScoreStore
from interp_sot.screening.screen import save_table

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="Chromium not found (apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as the pipeline leaves it: stats/, screen/ (judged contexts of feature 2), steer/."""
    root = tmp_path_factory.mktemp("run")
    stats, tok = small_stats()
    stats.save(root / "stats")
    save_table(screen_table(stats), root / "screen")
    # two of feature 2's contexts judged, stored as the screen stores them (rendered with its default window)
    judged = [(stats.contexts.render(int(stats.topk_seq[2, r]), int(stats.topk_pos[2, r]), before=32, after=8,
                                     tokenizer=tok), 80 + r) for r in range(2)]
    ScoreStore(root / "screen" / "conversation_scores.jsonl", "fake-judge", "conv-v1").put_many(judged)
    append_jsonl(root / "steer" / "sweep.jsonl", sweep_records(2))
    return root, stats, tok


@pytest.fixture(scope="module")
def site(run_dir):
    root, _, tok = run_dir
    return write_browser(root / "stats", screen=root / "screen", sweep=root / "steer", out=root / "site", tokenizer=tok)


def _rendered(dom: str) -> str:
    """The body the scripts built, up to its inline script (whose source would match anything)."""
    body = dom.index("<body")
    return dom[body : dom.index("<script", body)]


def _rows(dom: str) -> list[int]:
    return [int(f) for f in re.findall(r'<tr data-feature="(\d+)"', dom)]


@needs_chromium
def test_table_lists_sorts_and_filters_features(run_dir, site):
    _, stats, _ = run_dir
    table = screen_table(stats)
    dom = dump_dom(site)
    assert 'data-ready="1"' in dom
    fired = [f for f in range(stats.d_sae) if int(stats.fire_count[f]) > 0]
    ranked = table.dropna(subset=["rank"]).sort_values("rank")["feature"].tolist()
    by_pick = [f for f in pick_order(table)["feature"].tolist() if f in fired]
    assert _rows(dom) == by_pick  # default: the pick's order (the pick first), fired only
    assert f"{len(fired)} of {stats.d_sae} features" in dom
    assert '<a href="feature.html#5">5</a>' in dom
    by_max = sorted(fired, key=lambda f: (-float(stats.max_act[f]), f))
    assert _rows(dump_dom(site, "#sort=max_act&dir=desc")) == by_max
    assert _rows(dump_dom(site, "#q=commas")) == [3]  # label search
    assert sorted(_rows(dump_dom(site, "#pass=1&fired=0"))) == sorted(ranked)


def test_default_order_is_the_picks_order_from_the_same_function(run_dir, monkeypatch):
    import interp_sot.screening.pick as pick_module
    from interp_sot.browser import BrowserOptions
    from interp_sot.browser.data import feature_table, load_sources
    from interp_sot.stages.pick import PickConfig

    root, stats, tok = run_dir
    src = load_sources(root / "stats", screen=root / "screen", tokenizer=tok)
    cells = feature_table(src)
    order = sorted(range(stats.d_sae), key=lambda f: cells["pick_order"][f])
    expected = pick_order(src.screen)["feature"].tolist()
    assert order == expected and len(set(cells["pick_order"])) == stats.d_sae
    candidates = pick_module.ranked_candidates(src.screen, min_contexts=1)
    loose = feature_table(src, BrowserOptions(pick=PickConfig(min_contexts=1)))
    first = sorted(range(stats.d_sae), key=lambda f: loose["pick_order"][f])[: len(candidates)]
    assert first == candidates["feature"].tolist()
    assert first[0] == pick_module.pick_feature(src.screen, min_contexts=1).feature
    assert cells["ratio_lo"] == [None if v != v else float(f"{v:.6g}") for v in src.screen["ratio_lo"]]
    # the browser calls the pick's ordering function, not a copy of it: a changed order shows in the browser
    monkeypatch.setattr(pick_module, "pick_order", lambda table, *a, **k: table.iloc[::-1])
    assert feature_table(src)["pick_order"] == list(range(stats.d_sae, 0, -1))


@needs_chromium
def test_feature_page_shades_tokens_with_values_on_hover(run_dir, site):
    _, stats, tok = run_dir
    f = 2
    dom = _rendered(dump_dom(site.parent / "feature.html", f"#{f}"))
    assert "<h1 id=\"title\">Feature 2</h1>" in dom
    marks = re.findall(r'<span class="tok mark" data-act="([^"]+)" title="([^"]+)"[^>]*>(.*?)</span>', dom)
    filled = int((stats.topk_seq[f] >= 0).sum())
    assert dom.count('<div class="ctx">') == len(marks) == filled > 0
    for rank, (act, title, text) in enumerate(marks):
        value = float(stats.topk_values[f, rank])
        assert float(act) == pytest.approx(value, rel=1e-5)
        assert title == f"act {float(f'{value:.4g}'):g}"
        token = tok.decode([stats.contexts.tokens(int(stats.topk_seq[f, rank]))[int(stats.topk_pos[f, rank])]])
        assert html.unescape(text) == token.replace("\n", "\u21b5")
    # tokens outside the top-k carry the honest bound, never a made-up value
    kth = float(stats.topk_values[f, -1])
    assert f'title="act ≤ {float(f"{kth:.4g}"):g} (not among the top-5)"' in dom
    # judge verdicts: ratio, the judge's name, and each judged context's score
    assert 'id="verdict"' in dom and "fake-judge" in dom
    assert "judge 80</span>" in dom and "judge 81</span>" in dom
    # steering samples per strength, escaped
    for s in ("-5", "0", "5"):
        assert f'<details class="sample" data-strength="{s}">' in dom
    assert "&lt;b&gt;bold&lt;/b&gt;" in dom and "<b>bold</b>" not in dom
    # accuracy per strength: at +5 one of the two records is correct, at 0 and -5 none
    for s, acc in (("-5", "0%"), ("0", "0%"), ("5", "50.0%")):
        assert f'<tr><td class="num">{s}</td><td class="num">2</td><td class="num">{acc}</td>' in dom
    # the histogram counts every filled top-k slot once
    counts = [int(c) for c in re.findall(r"<title>[^<:]+: (\d+)</title></rect>", dom)]
    assert len(counts) == 20 and sum(counts) == filled


@needs_chromium
def test_stats_without_contexts_give_table_only(tmp_path):
    stats, _ = small_stats(contexts=False)
    index = write_browser(stats, out=tmp_path / "site")
    assert not list((tmp_path / "site" / "data").glob("shard-*.js"))
    dom = _rendered(dump_dom(index))
    assert "carry no top-k contexts" in dom and 'href="feature.html' not in dom
    assert len(_rows(dom)) == sum(int(c) > 0 for c in stats.fire_count)


@needs_chromium
def test_cli_exports_neuronpedia_and_browses_the_export(run_dir, tmp_path):
    from interp_sot.cli import main
    from interp_sot.features.stats import FeatureStats

    root, stats, tok = run_dir
    tok.save_pretrained(tmp_path / "tok")
    np_dir, site_dir = tmp_path / "np", tmp_path / "site"
    assert main(["browse", "--stats", str(root / "stats"), "--screen", str(root / "screen"), "--tokenizer",
                 str(tmp_path / "tok"), "--neuronpedia-out", str(np_dir), "--model-id", "tiny",
                 "--source-id", "3-test"]) == 0
    assert main(["browse", "--neuronpedia", str(np_dir), "--out", str(site_dir),
                 "--stats-out", str(tmp_path / "imported")]) == 0
    assert FeatureStats.load(tmp_path / "imported").fire_count.tolist() == stats.fire_count.tolist()
    dom = dump_dom(site_dir / "feature.html", "#2")
    marks = re.findall(r'<span class="tok mark" data-act="([^"]+)"', dom)
    assert [float(v) for v in marks] == pytest.approx(stats.topk_values[2].tolist(), rel=1e-5)
    index = dump_dom(site_dir / "index.html")
    assert "Neuronpedia export tiny / 3-test" in index and "commas in lists" in index  # labels came along


def test_out_that_is_a_file_is_refused(run_dir, tmp_path, capsys):
    from interp_sot.cli import main

    root, _, _ = run_dir
    target = tmp_path / "site.html"
    target.write_text("mine")
    assert main(["browse", "--stats", str(root / "stats"), "--out", str(target)]) == 2
    assert re.search(r"--out .* is a file", capsys.readouterr().err)
    with pytest.raises(NotADirectoryError):
        write_browser(root / "stats", out=target)
    assert target.read_text() == "mine"


def test_cli_help_does_not_import_torch():
    import subprocess

    code = ("import sys; from interp_sot.cli import main\ntry: main(['browse', '--help'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'pandas', 'interp_sot.browser.data') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "interp-sot browse: a static HTML feature browser" in out.replace("`", "")  # the module docstring
    assert out.strip().endswith("[]")


def test_cli_flags_build_the_request():
    from interp_sot.browser import BrowseRequest
    from interp_sot.cli import build_parser
    from interp_sot.cli.browse import run
    from interp_sot.flags import from_flags

    parser = build_parser()
    args = parser.parse_args(["browse", "--stats", "s", "--sweep", "a", "--sweep", "b,c", "--window", "3", "1",
                              "--out", "o", "--n-tokens", "7"])
    request = from_flags(BrowseRequest, args, sweep=tuple(args.sweep), window=tuple(args.window),
                         judge_window=tuple(args.judge_window))
    assert request == BrowseRequest(stats="s", sweep=("a", "b,c"), window=(3, 1), out="o", n_tokens=7)
    assert args.run is run
    defaults = parser.parse_args(["browse", "--neuronpedia", "np", "--out", "o"])
    assert (defaults.contexts, tuple(defaults.window), tuple(defaults.judge_window), defaults.sweep) == (
        20, (24, 8), (32, 8), [])
    for argv in (["--out", "o"], ["--stats", "s", "--neuronpedia", "np", "--out", "o"]):  # exactly one source
        with pytest.raises(SystemExit):
            parser.parse_args(["browse", *argv])


@pytest.mark.parametrize(("argv", "message"), [
    (["--stats", "s"], "nothing to write: give --out, --neuronpedia-out or --stats-out"),
    (["--neuronpedia", "np", "--neuronpedia-out", "x"], "--neuronpedia-out needs --stats"),
    (["--stats", "s", "--stats-out", "x"], "--stats-out needs --neuronpedia"),
    (["--stats", "s", "--out", "o", "--window", "-1", "8"], "--contexts, --window and --judge-window take counts"),
])
def test_cli_refuses_flags_that_cannot_work(argv, message, capsys):
    from interp_sot.cli import main

    assert main(["browse", *argv]) == 2
    assert message in capsys.readouterr().err


def test_browse_returns_what_the_command_prints(run_dir, tmp_path):
    from interp_sot.browser import BrowseRequest, browse
    from interp_sot.features.stats import FeatureStats

    root, stats, tok = run_dir
    tok.save_pretrained(tmp_path / "tok")
    exported = browse(BrowseRequest(stats=str(root / "stats"), screen=str(root / "screen"),
                                    tokenizer=str(tmp_path / "tok"), neuronpedia_out=str(tmp_path / "np")))
    assert exported.export == tmp_path / "np" and exported.site is None and exported.stats is None
    assert exported.lines == (f"Neuronpedia export ({stats.d_sae} features, {int((stats.topk_seq >= 0).sum())} "
                              f"contexts, 2 labels): {tmp_path / 'np'}",)
    imported = browse(BrowseRequest(neuronpedia=str(tmp_path / "np"), out=str(tmp_path / "site"),
                                    stats_out=str(tmp_path / "imported")))
    assert imported.site == tmp_path / "site" / "index.html" and imported.site.is_file()
    assert imported.lines == (f"FeatureStats ({stats.d_sae} features): {tmp_path / 'imported'}",
                              f"feature browser: {imported.site}")
    assert FeatureStats.load(imported.stats).fire_count.tolist() == stats.fire_count.tolist()
