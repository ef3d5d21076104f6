"""Under torchrun the ranks share rank 0's claim of the run directory (``stages.rundir.claim_dir``).

Two gloo ranks on the CPU run ``steer`` exactly as torchrun starts them (its environment variables). While the
ranks generate, the folder is locked by rank 0's pid: rank 1 writes its shard log into it without being refused
(it never claims; it waited for rank 0's claim), whereas any other process is refused at once, naming rank 0's
pid: rank 1 itself if it tried to claim, and a separate process started without torchrun. After the job the lock
is gone.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from builders import _build, char_tokenizer

from interp_sot.cli import main
from interp_sot.io import read_jsonl
from interp_sot.stages.rundir import RunDirError, claim_dir, lock_holder, release_dir
from interp_sot.steering import save_direction

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                 "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID")
OUTSIDE_CLAIM = ("import sys; from pathlib import Path; from interp_sot.stages.rundir import RunDirError, claim_dir\n"
                 "try:\n    claim_dir(Path(sys.argv[1]))\nexcept RunDirError as err:\n"
                 "    print(err)\n    sys.exit(3)\nprint('claimed')")
"""A plain process (not a rank) trying to claim the folder: exit 3 and the message when refused."""


def _steer_args(tmp: Path) -> list[str]:
    """A greedy steer sweep of 4 rows in 2 batches of 2: one batch per rank."""
    if not (tmp / "model").is_dir():
        _build("llama").save_pretrained(tmp / "model")
        char_tokenizer().save_pretrained(tmp / "model")
        save_direction(tmp / "d.safetensors", torch.randn(32, generator=torch.Generator().manual_seed(0)))
    return ["steer", "--model", str(tmp / "model"), "--device", "cpu", "--direction", str(tmp / "d.safetensors"),
            "--strengths=0,4", "--greedy", "--layer", "1", "--n-problems", "2", "--max-new-tokens", "3",
            "--batch-size", "2", "--no-report", "--out", str(tmp / "run")]


def _outside_claim(out: Path) -> tuple[int, str]:
    """``claim_dir(out)`` from a separate process started without torchrun's environment."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    done = subprocess.run([sys.executable, "-c", OUTSIDE_CLAIM, str(out)], capture_output=True, text=True,
                          cwd=ROOT, env={**env, "OMP_NUM_THREADS": "1"}, timeout=300)
    return done.returncode, (done.stdout + done.stderr).strip()


def _worker(rank: int, world: int, port: int, tmp: str) -> None:
    """One torchrun rank. Just before its batches generate (the ranks are past the claim), it looks at the lock."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import interp_sot.experiments.sharding as sharding

    seen: dict[str, Any] = {"rank": rank, "pid": os.getpid()}
    generate = sharding.run_rows

    def look_then_generate(*args: Any, **kwargs: Any) -> Any:
        out = Path(kwargs["out_path"]).parent
        seen["holder"] = lock_holder(out.resolve())
        seen["stage_json"] = (out / "stage.json").is_file()
        try:
            seen["own_claim"] = claim_dir(out)  # rank 0: False (held already); rank 1: refused
        except RunDirError as err:
            seen["own_claim"] = str(err)
        if rank == 0:
            seen["outside"] = _outside_claim(out)
        return generate(*args, **kwargs)

    sharding.run_rows = look_then_generate
    seen["exit"] = main(_steer_args(Path(tmp)))
    Path(tmp, f"rank{rank}.json").write_text(json.dumps(seen))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ranks_share_rank0_claim_and_outsiders_are_refused(tmp_path: Path) -> None:
    _steer_args(tmp_path)  # build the inputs once, before the ranks start
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert rank0["exit"] == rank1["exit"] == 0
    pid0 = str(rank0["pid"])
    assert rank0["pid"] != rank1["pid"]
    # both ranks generated while the folder was locked by rank 0, with stage.json already written
    assert rank0["holder"] == rank1["holder"] == pid0
    assert rank0["stage_json"] and rank1["stage_json"]
    # the lock is real: rank 0 holds it (re-entrant: False), rank 1 would be refused were it to claim...
    assert rank0["own_claim"] is False
    assert f"pid {pid0}" in rank1["own_claim"] and "in use by another process" in rank1["own_claim"]
    # ...and so is a separate process started without torchrun
    code, message = rank0["outside"]
    assert code == 3 and f"pid {pid0}" in message and "in use by another process" in message
    # yet rank 1 wrote its shard into the claimed folder, and rank 0 merged both
    run = tmp_path / "run"
    ranks = [read_jsonl(run / f"sweep.rank{r}-of-2.jsonl") for r in range(2)]
    assert all(ranks) and len(read_jsonl(run / "sweep.jsonl")) == sum(len(r) for r in ranks) == 4
    assert (run / "manifest.json").is_file()
    # the job is over: nobody holds the folder
    assert _outside_claim(run) == (0, "claimed")
    assert claim_dir(run) is True
    release_dir(run)
