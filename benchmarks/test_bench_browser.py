"""Feature browser at the paper's SAE width: 32,768 features, top-20 contexts each, opened in headless Chromium.

Run: ``HF_HUB_OFFLINE=1 pytest -q -s benchmarks/test_bench_browser.py`` (needs Debian's ``chromium``).
Prints, side by side in one run: Chromium on a blank page (process start-up, the floor), the table page, and
one feature page; plus the in-page time to the rendered table (``performance.now()`` when the first rows are in
the DOM) and the time to write the site. Target: the table opens in < 2 s. Asserts only correctness.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

D_SAE, K, N_SEQ, SEQ_LEN, SHOWN = 32_768, 50, 4_000, 64, 20


def synthetic_stats() -> tuple[object, object]:
    """FeatureStats with 32,768 features, full top-50 tables and the 4,000 sequences they point into."""
    from features_helpers import char_tokenizer

    from interp_sot.features.contexts import ContextStore
    from interp_sot.features.stats import FORMAT_VERSION, FeatureStats

    g = torch.Generator().manual_seed(0)
    fires = torch.randint(0, 5_000, (D_SAE,), generator=g)
    fires[::50] = 0
    values = torch.rand(D_SAE, K, generator=g).mul(20).sort(dim=1, descending=True).values
    seq = torch.randint(0, N_SEQ, (D_SAE, K), generator=g)
    pos = torch.randint(1, SEQ_LEN, (D_SAE, K), generator=g)
    dead = fires == 0
    values[dead], seq[dead], pos[dead] = 0.0, -1, -1
    tensors = {"fire_count": fires, "first_n_count": fires // 3, "onset_count": fires // 2,
               "nonfinite_count": torch.zeros(D_SAE, dtype=torch.int64),
               "act_sum": fires.double() * 3, "act_sq_sum": fires.double() * 12, "topk_values": values,
               "topk_seq": seq, "topk_pos": pos, "topk_onset": torch.randint(0, 9, (D_SAE, K), generator=g)}
    meta = {"format_version": FORMAT_VERSION, "d_sae": D_SAE, "top_k": K, "first_n": 4, "onset_n": 4,
            "n_tokens": 4_000_000, "info": {"model": "synthetic", "layer": 15}}
    stats = FeatureStats.from_state(tensors, meta)
    tok = char_tokenizer()
    stats.contexts = ContextStore(tok)
    ids = torch.randint(4, 70, (N_SEQ, SEQ_LEN), generator=g)
    for s in range(N_SEQ):
        stats.contexts.add(s, ids[s], {"conversational": s % 3 == 0})
    return stats, tok


@pytest.mark.slow
def test_bench_browser_32k(tmp_path):
    from chromium import dump_dom, find_chromium, run_chromium

    from interp_sot.browser import BrowserOptions, write_browser

    if find_chromium() is None:
        pytest.skip("Chromium not found (apt-get install chromium)")
    stats, tok = synthetic_stats()
    start = time.perf_counter()
    index = write_browser(stats, out=tmp_path / "site", tokenizer=tok, options=BrowserOptions(contexts=SHOWN))
    build = time.perf_counter() - start
    data = tmp_path / "site" / "data"
    table_mb = (data / "table.js").stat().st_size / 2**20
    shards = list(data.glob("shard-*.js"))
    shard_mb = max(p.stat().st_size for p in shards) / 2**20

    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><title>blank</title><p>blank</p>")
    rows: list[tuple[str, float, str]] = []
    for name, page, frag in (("blank page (floor)", blank, ""), ("table, 32,768 features", index, ""),
                             ("feature page #12345", index.parent / "feature.html", "#12345")):
        walls, dom = [], ""
        for _ in range(3):
            dom, wall = run_chromium(page.resolve().as_uri() + frag, "--virtual-time-budget=10000", "--dump-dom")
            walls.append(wall)
        ms = re.search(r'data-render-ms="(\d+)"', dom)
        rows.append((name, min(walls), f"{ms.group(1)} ms" if ms else ""))
        if page != blank:
            assert 'data-ready="1"' in dom
    assert len(re.findall(r'<tr data-feature="\d', dump_dom(index))) == 100

    print(f"\nfeature browser, {D_SAE:,} features x top-{SHOWN} contexts: site written in {build:.1f} s; "
          f"table.js {table_mb:.2f} MiB, {len(shards)} shards of <= {shard_mb:.2f} MiB")
    print(f"{'headless Chromium, from disk':<28} {'wall (best of 3)':>17} {'vs blank':>9} {'in-page render':>15}")
    for name, wall, ms in rows:
        print(f"{name:<28} {wall:>15.2f} s {wall - rows[0][1]:>+8.2f}s {ms:>15}")
