"""Loading Countdown problems in the TinyZero format (``target``, ``nums``) from a file or a Hugging Face dataset.

Accepted sources: ``.jsonl``, ``.json`` (a list of records or a dict of columns), ``.parquet``, ``.csv`` (``nums``
as a JSON list), or a dataset id such as ``Jiayi-Pan/Countdown-Tasks-3to4`` (loaded with ``datasets``; needs the
hub or its local cache). A record's ``problem_id`` / ``id`` is kept when present; otherwise problems are numbered
by their position in the source, so ids are stable as long as the source is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from interp_sot.tasks.countdown.problems import CountdownProblem

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} is a boolean")
    if isinstance(value, str):
        value = value.strip()
    try:
        f = float(value)
        i = int(f)
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{what} = {value!r} is not a number") from err
    if f != i:
        raise ValueError(f"{what} = {value!r} is not an integer")
    return i


def _as_nums(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{what} = {value!r} is not a JSON list of numbers") from err
    if hasattr(value, "tolist"):  # numpy / pyarrow arrays from parquet
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{what} must be a list of numbers, got {type(value).__name__}")
    return tuple(_as_int(v, f"{what}[{j}]") for j, v in enumerate(value))


def problems_from_records(
    records: Iterable[Mapping[str, Any]], *, source: str, id_prefix: str
) -> list[CountdownProblem]:
    """Validate TinyZero-style records; errors name the source and the record index."""
    out: list[CountdownProblem] = []
    for i, rec in enumerate(records):
        where = f"{source}: record {i}"
        if not isinstance(rec, Mapping):
            raise ValueError(f"{where} is a {type(rec).__name__}, expected an object with 'target' and 'nums'")
        missing = [k for k in ("target", "nums") if k not in rec]
        if missing:
            raise ValueError(f"{where} lacks field(s) {missing} (TinyZero format: 'target', 'nums')")
        raw_id = rec.get("problem_id", rec.get("id"))
        pid = str(raw_id) if raw_id is not None and str(raw_id) else f"{id_prefix}-{i}"
        solution = rec.get("solution")
        out.append(
            CountdownProblem(
                pid,
                _as_nums(rec["nums"], f"{where} nums"),
                _as_int(rec["target"], f"{where} target"),
                solution if isinstance(solution, str) else None,
            )
        )
    ids = [p.problem_id for p in out]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise ValueError(f"{source}: problem id {dup!r} occurs more than once")
    return out


def _read_file(path: Path) -> list[Mapping[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}: line {n} is not valid JSON ({err.msg})") from err
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err.msg})") from err
        if isinstance(data, dict) and "target" in data and "nums" in data:  # columns
            targets, nums = data["target"], data["nums"]
            if not isinstance(targets, list) or not isinstance(nums, list) or len(targets) != len(nums):
                raise ValueError(f"{path}: column form needs equal-length lists 'target' and 'nums'")
            return [{"target": t, "nums": n} for t, n in zip(targets, nums, strict=True)]
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a list of records or a dict of columns 'target'/'nums'")
        return data
    import pandas as pd

    frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    return frame.to_dict(orient="records")


def load_tinyzero(
    source: str | Path,
    *,
    split: str = "train",
    limit: int | None = None,
    id_prefix: str | None = None,
) -> list[CountdownProblem]:
    """Problems from a local file (see module doc) or a Hugging Face dataset id; the first ``limit`` if given."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    path = Path(source)
    if path.is_file():
        records = _read_file(path)
        prefix = id_prefix or path.stem
        label = str(path)
    elif path.suffix.lower() in FILE_SUFFIXES or path.exists():
        raise FileNotFoundError(f"Countdown problem file not found (or not a file): {path}")
    else:
        from datasets import load_dataset

        name = str(source)
        logger.info("loading Countdown problems from the Hugging Face dataset %s (split %s)", name, split)
        ds = load_dataset(name, split=split if limit is None else f"{split}[:{limit}]")
        records = list(ds)
        prefix = id_prefix or name.split("/")[-1]
        label = f"{name}[{split}]"
    if limit is not None:
        records = records[:limit]
    return problems_from_records(records, source=label, id_prefix=prefix)
