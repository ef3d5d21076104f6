"""Sweeps on several processes (``torchrun -m interp_sot.cli steer|controls``) equal a single-process run.

Two gloo ranks on the CPU run the CLI exactly as torchrun starts it (its environment variables); the merged
``sweep.jsonl``/``controls.jsonl`` must be byte-identical to one process's, greedy and sampled; a rank log cut short
resumes to the same bytes; another world size adopts the rows already made.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
from builders import _build, char_tokenizer

from interp_sot.cli import main
from interp_sot.experiments import sweep_rows
from interp_sot.experiments.sharding import Shard, adopt_rows, beside, merge_logs, rank_device, write_log
from interp_sot.io import read_jsonl
from interp_sot.steering import save_direction
from interp_sot.tasks.countdown import generate_problems

COMMON = ["--layer", "1", "--n-problems", "3", "--max-new-tokens", "5", "--batch-size", "2", "--no-report"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(tmp: Path) -> dict[str, list[str]]:
    """Arguments of a greedy steer sweep (9 rows, 5 batches) and a sampled controls run (6 rows, 3 batches)."""
    if not (tmp / "model").is_dir():
        _build("llama").save_pretrained(tmp / "model")
        char_tokenizer().save_pretrained(tmp / "model")
        g = torch.Generator().manual_seed(0)
        save_direction(tmp / "d.safetensors", torch.randn(32, generator=g))
        save_direction(tmp / "wdec.safetensors", torch.randn(6, 32, generator=g))
        pd.DataFrame({"feature": [1, 2], "strength": [3.0, 5.0], "group": ["conversational", "non_conversational"]}
                     ).to_csv(tmp / "controls.csv", index=False)
    model = ["--model", str(tmp / "model"), "--device", "cpu", *COMMON]
    return {
        "steer": ["steer", "--direction", str(tmp / "d.safetensors"), "--strengths=-4,0,4", "--greedy", *model],
        "controls": ["controls", "--decoder", str(tmp / "wdec.safetensors"), "--controls", str(tmp / "controls.csv"),
                     "--problems-per-feature", "3", "--temperature", "1.0", *model],
    }


def _worker(rank: int, world: int, port: int, tmp: str) -> None:
    """One torchrun rank: the environment torchrun gives it, then the CLI for both runs."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    args = _inputs(Path(tmp))
    for name in ("steer", "controls"):
        assert main([*args[name], "--out", f"{tmp}/dist_{name}"]) == 0
    # the job killed mid-run: no merge yet, rank 1's last row torn mid-write; the same command resumes it
    import torch.distributed as dist

    dist.barrier()
    run = Path(tmp) / "dist_controls"
    if rank == 0:
        (run / "controls.jsonl").rename(Path(tmp) / "first_controls.jsonl")
        (run / "manifest.json").unlink()
        log1 = run / "controls.rank1-of-2.jsonl"
        lines = log1.read_text().splitlines(keepends=True)
        log1.rename(Path(tmp) / "first_rank1.jsonl")
        log1.write_text("".join(lines[:-1]) + lines[-1][:40])
    dist.barrier()
    assert main([*args["controls"], "--out", str(run)]) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_batches_go_whole_to_ranks() -> None:
    rows = sweep_rows(generate_problems(5, seed=0), [7], [-1.0, 1.0])  # 10 rows; batches of 3: 0-2, 3-5, 6-8, 9
    shards = [Shard(r, 2).rows(rows, 3) for r in range(2)]
    assert [r.key for r in shards[0]] == [r.key for r in rows[0:3] + rows[6:9]]
    assert [r.key for r in shards[1]] == [r.key for r in rows[3:6] + rows[9:]]
    assert Shard().rows(rows, 3) == rows and Shard(3, 4).rows(rows, 4) == []
    assert Shard(1, 4).log_path("run/sweep.jsonl") == Path("run/sweep.rank1-of-4.jsonl")
    assert Shard().log_path("run/sweep.jsonl") == Path("run/sweep.jsonl")
    with pytest.raises(ValueError, match="rank 2 of 2"):
        Shard(2, 2)


def test_another_world_size_adopts_rows_and_merges_in_row_order(tmp_path: Path) -> None:
    """A one-process log re-sharded on 3 ranks: each rank log takes exactly its batches' rows; merged = original."""
    rows = sweep_rows(generate_problems(4, seed=0), [7], [-1.0, 0.0, 1.0])  # 12 rows, batches of 2
    settings = {"layer": 1}
    log = tmp_path / "sweep.jsonl"
    write_log(log, [{"key": r.key, "settings": settings, "n": i} for i, r in enumerate(rows)][::-1])
    shards = [Shard(r, 3) for r in range(3)]
    for shard in shards:
        assert adopt_rows(shard.log_path(log), shard.rows(rows, 2), beside(log), settings) == 4
        assert [d["key"] for d in read_jsonl(shard.log_path(log))] == [r.key for r in shard.rows(rows, 2)][::-1]
        assert adopt_rows(shard.log_path(log), shard.rows(rows, 2), beside(log), settings) == 0  # nothing twice
    log.unlink()
    merged = merge_logs(rows, [s.log_path(log) for s in shards])
    assert [d["n"] for d in merged] == list(range(12))
    with pytest.raises(ValueError, match=r"4 rows .* every rank sees"):
        merge_logs(rows, [s.log_path(log) for s in shards[1:]])
    with pytest.raises(ValueError, match="different settings"):
        adopt_rows(tmp_path / "other.jsonl", rows, beside(log), {"layer": 2})


def test_module_entry_point() -> None:
    """``torchrun ... -m interp_sot.cli`` needs ``python -m interp_sot.cli``."""
    done = subprocess.run([sys.executable, "-m", "interp_sot.cli", "steer", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--batch-size" in done.stdout


def test_rank_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert rank_device("cpu") == "cpu" and rank_device(None) is None
    with pytest.raises(ValueError, match="cuda:LOCAL_RANK"):
        rank_device("cuda:0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert rank_device("cuda:0") == "cuda:0"


def _files(run: Path) -> set[str]:
    return {p.name for p in run.iterdir()}


def test_two_ranks_equal_one_process_and_resume(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    args = _inputs(tmp_path)
    for name, log in (("steer", "sweep"), ("controls", "controls")):
        assert main([*args[name], "--out", str(tmp_path / f"one_{name}")]) == 0
        one, dist = tmp_path / f"one_{name}", tmp_path / f"dist_{name}"
        assert (dist / f"{log}.jsonl").read_bytes() == (one / f"{log}.jsonl").read_bytes()
        ranks = [read_jsonl(dist / f"{log}.rank{r}-of-2.jsonl") for r in range(2)]
        assert all(ranks) and {d["key"] for d in ranks[0]}.isdisjoint(d["key"] for d in ranks[1])
        # rank 1 wrote its log only; rank 0 the rest, once
        assert _files(dist) == _files(one) | {f"{log}.rank0-of-2.jsonl", f"{log}.rank1-of-2.jsonl"}
        assert json.loads((dist / "manifest.json").read_text()) == json.loads((one / "manifest.json").read_text())
    sampled = read_jsonl(tmp_path / "one_controls" / "controls.jsonl")
    assert sampled[0]["settings"]["generation"]["do_sample"] is True and len(sampled) == 6

    # resumed after a kill (in _worker): the same merged bytes; rank 1 made its lost row again
    dist = tmp_path / "dist_controls"
    assert (dist / "controls.jsonl").read_bytes() == (tmp_path / "first_controls.jsonl").read_bytes()
    assert (dist / "controls.rank1-of-2.jsonl").read_bytes() == (tmp_path / "first_rank1.jsonl").read_bytes()

    # another world size (here one process) adopts what the rank logs hold and makes only the rest
    steer = tmp_path / "dist_steer"
    expected = (steer / "sweep.jsonl").read_bytes()
    (steer / "sweep.jsonl").unlink()
    log0 = steer / "sweep.rank0-of-2.jsonl"
    log0.write_text("".join(log0.read_text().splitlines(keepends=True)[:-1]))
    assert main([*args["steer"], "--out", str(steer)]) == 0
    assert (steer / "sweep.jsonl").read_bytes() == expected
