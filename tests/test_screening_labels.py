"""Neuronpedia labels (export files and the client over loopback HTTP) and category classification."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from interp_sot.judging.heuristic import HeuristicJudge, category_scores
from interp_sot.screening.categories import classify_categories, parse_category_items
from interp_sot.screening.labels import export_files, feature_labels, fetch_labels, read_explanations


def row(index, description, model="gpt-4o-mini", **extra):
    return {"modelId": "deepseek-r1-distill-llama-8b", "layer": "15-llamascope-slimpj-res-32k", "index": index,
            "description": description, "explanationModelName": model, "typeName": "oai_token-act-pair", **extra}


def write_export(folder, batches):
    (folder / "explanations").mkdir(parents=True)
    for n, rows in batches.items():
        with gzip.open(folder / "explanations" / f"batch-{n}.jsonl.gz", "wt") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in rows))


def test_read_export_in_batch_order_and_pick_one_label(tmp_path) -> None:
    write_export(tmp_path, {
        10: [row(10240, "late batch")],
        2: [row("2048", "second batch"), row(5, "duplicate, other model", model="claude")],
        0: [row(5, "surprise marker"), row(7, "code tokens")],
    })
    assert [p.name for p in export_files(tmp_path)] == ["batch-0.jsonl.gz", "batch-2.jsonl.gz", "batch-10.jsonl.gz"]
    table = read_explanations(tmp_path)
    assert table["index"].tolist() == [5, 7, 2048, 5, 10240]
    assert table.loc[0, "explanation_model"] == "gpt-4o-mini" and table.loc[0, "type_name"] == "oai_token-act-pair"
    labels = feature_labels(table)
    assert labels.to_dict() == {5: "surprise marker", 7: "code tokens", 2048: "second batch", 10240: "late batch"}
    assert feature_labels(table, prefer_models=["claude"])[5] == "duplicate, other model"
    with pytest.raises(ValueError, match="feature 10240 is out of range for d_sae=4096"):
        feature_labels(table, d_sae=4096)
    assert read_explanations(tmp_path / "explanations" / "batch-0.jsonl.gz")["index"].tolist() == [5, 7]


def test_unreadable_exports_give_clear_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no Neuronpedia explanation export"):
        read_explanations(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds no batch-N\.jsonl\.gz"):
        read_explanations(tmp_path / "empty")
    bad = tmp_path / "batch-0.jsonl.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(ValueError, match=r"cannot read the Neuronpedia export .*batch-0.jsonl.gz"):
        read_explanations(bad)
    with gzip.open(bad, "wt") as fh:
        fh.write(json.dumps(row(1, "ok")) + "\n{broken\n")
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_explanations(bad)
    with gzip.open(bad, "wt") as fh:
        fh.write(json.dumps({"index": 1}) + "\n")
    with pytest.raises(ValueError,
                       match=r"line 1 lacks the explanations field\(s\) \['modelId', 'layer', 'description'\]"):
        read_explanations(bad)
    with gzip.open(bad, "wt") as fh:
        fh.write(json.dumps(row("x1", "d")) + "\n")
    with pytest.raises(ValueError, match="non-integer index 'x1'"):
        read_explanations(bad)
    full = bytearray(gzip.compress((json.dumps(row(1, "a")) + "\n").encode() * 50))
    bad.write_bytes(bytes(full[: len(full) // 2]))  # truncated download
    with pytest.raises(ValueError, match="cannot read the Neuronpedia export"):
        read_explanations(bad)


def test_fetch_labels_through_the_neuronpedia_client(monkeypatch) -> None:
    from neuronpedia.requests.base_request import NPRequest

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            return

        def do_GET(self):
            seen.append((self.path, self.headers.get("X-Api-Key")))
            index = int(self.path.rstrip("/").split("/")[-1])
            exps = [] if index == 3 else [{"description": f"desc {index}", "explanationModelName": "m",
                                           "typeName": "t"}]
            body = json.dumps({"modelId": "mod", "layer": "src", "index": str(index), "explanations": exps}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    monkeypatch.delenv("NEURONPEDIA_API_KEY", raising=False)
    with pytest.raises(ValueError, match="set NEURONPEDIA_API_KEY"):
        fetch_labels("mod", "src", [1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("NEURONPEDIA_API_KEY", "k123")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.setattr(NPRequest, "BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/api")
        labels = fetch_labels("mod", "src", [2, 3, 30939])
    finally:
        server.shutdown()
    assert labels.to_dict() == {2: "desc 2", 30939: "desc 30939"}
    assert seen[0] == ("/api/feature/mod/src/2", "k123") and len(seen) == 3


def test_categories_with_the_heuristic_judge(tmp_path) -> None:
    labels = pd.Series({0: "discourse marker for surprise, realization", 4: "Python code for sorting algorithm",
                        9: "emotional tone in medical law", 11: "the letter q", 12: None,
                        13: "discourse marker for surprise, realization"})
    store = tmp_path / "cat.jsonl"
    out = classify_categories(labels, HeuristicJudge(), store, batch_size=2)
    assert out.index.tolist() == [0, 4, 9, 11, 12, 13]
    for f, desc in labels.items():
        if not isinstance(desc, str):
            assert not out.loc[f, "judged"] and out.loc[f, "category"] == "other"
            continue
        p, e = category_scores(desc)
        assert (out.loc[f, "personality_score"], out.loc[f, "expertise_score"]) == (p, e)
    assert out["category"].tolist() == ["personality", "expertise", "personality", "other", "other", "personality"]
    assert bool(out.loc[9, "is_expertise"]) and bool(out.loc[9, "is_personality"])
    assert len(store.read_text().splitlines()) == 4  # 4 distinct descriptions judged once
    strict = classify_categories(labels, HeuristicJudge(), store, threshold=90)
    assert strict["category"].tolist() == ["other", "expertise", "other", "other", "other", "other"]
    assert len(store.read_text().splitlines()) == 4  # the rerun judged nothing new


def test_parse_category_items() -> None:
    assert parse_category_items({"items": [{"personality": 10, "expertise": 90.5}]}, 1) == [[10.0, 90.5]]
    with pytest.raises(ValueError, match="exactly 2 objects"):
        parse_category_items({"items": [{"personality": 1, "expertise": 2}]}, 2)
    with pytest.raises(ValueError, match="expertise must be a number"):
        parse_category_items({"items": [{"personality": 1}]}, 1)
    with pytest.raises(ValueError, match="personality must be a number"):
        parse_category_items({"items": [{"personality": 120, "expertise": 1}]}, 1)
