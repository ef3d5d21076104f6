"""Loading Countdown problems in the TinyZero format (``target``, ``nums``) from a file or a Hugging Face dataset.

Accepted sources: ``.jsonl``, ``.json`` (a list of records or a dict of columns), ``.parquet``, ``.csv`` (``nums``
as a JSON list), or a Hub dataset id such as ``Jiayi-Pan/Countdown-Tasks-3to4``. A dataset id is read from the hub
cache through :mod:`interp_sot.hub` (so ``HF_HUB_OFFLINE=1`` works with files fetched by
``huggingface-cli download --repo-type dataset``) and downloaded into it when online. A source that looks like a
path is never sent to the Hub. A record's ``problem_id`` / ``id`` is kept when present; otherwise problems are
numbered by their row in the source (``Countdown-Tasks-3to4-327680`` is row 327,680 of its ``train`` split), so ids
are stable as long as the source is.

TinyZero's split (``tinyzero_split``): of the dataset's ``train`` split, rows ``[0, 327680)`` are its train set and
the next 1,024 rows its test set, the paper's 1,024 evaluation problems (TinyZero's
``examples/data_preprocess/countdown.py``: ``TRAIN_SIZE = 327680``, ``TEST_SIZE = 1024``).

Numbers stay integers end to end: an integer (JSON, numpy, a string of digits) is taken as is, never through a float
(12345678901234567891 would come back as 12345678901234567168); a float is accepted only when it is integral and
below 2**53, where it is exact. Targets must be >= 0, like the numbers: TinyZero's are 1..99 and the generator's
positive, so a negative target in a file marks a damaged or mis-mapped column rather than a problem to steer on.
Errors are :class:`~interp_sot.errors.InterpSotError` naming the source, the record and the value (cut to ~200
characters).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import sys
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from interp_sot.errors import InterpSotError, shorten
from interp_sot.tasks.countdown.problems import CountdownProblem

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
TINYZERO_TRAIN_SIZE = 327_680
"""Rows of the dataset's ``train`` split that TinyZero trains on (its first rows)."""
TINYZERO_TEST_SIZE = 1_024
"""Rows right after the train rows that TinyZero evaluates on: the paper's 1,024 problems."""
TinyZeroSplit = Literal["train", "test"]
TINYZERO_SPLITS: tuple[TinyZeroSplit, ...] = ("train", "test")
REQUIRED_FIELDS = ("target", "nums")


def tinyzero_rows(which: TinyZeroSplit) -> range:
    """Row numbers (within the dataset's ``train`` split) of TinyZero's train or test set."""
    if which == "train":
        return range(0, TINYZERO_TRAIN_SIZE)
    if which == "test":
        return range(TINYZERO_TRAIN_SIZE, TINYZERO_TRAIN_SIZE + TINYZERO_TEST_SIZE)
    raise InterpSotError(f"tinyzero_split must be one of {TINYZERO_SPLITS}, got {which!r}")


EXACT_FLOAT_INTS = 2**53
"""Integral floats up to this magnitude are exact; beyond it a float has already lost digits."""


def _as_int(value: object, what: str) -> int:
    """``value`` as an exact integer (see the module docstring); InterpSotError naming ``what`` otherwise."""
    if isinstance(value, bool):
        raise InterpSotError(f"{what} is a boolean")
    if isinstance(value, numbers.Integral):  # int, numpy integers: exact
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            dec = Decimal(text)
        except InvalidOperation as err:
            raise InterpSotError(f"{what} = {shorten(repr(value))} is not a number") from err
        if not dec.is_finite() or dec != dec.to_integral_value():
            raise InterpSotError(f"{what} = {shorten(repr(value))} is not an integer")
        return int(dec)
    if isinstance(value, numbers.Real):  # float, numpy floats (CSV / parquet columns)
        f = float(value)
        if not math.isfinite(f) or not f.is_integer():
            raise InterpSotError(f"{what} = {shorten(repr(value))} is not an integer")
        if abs(f) > EXACT_FLOAT_INTS:
            raise InterpSotError(f"{what} = {f!r} is a float beyond 2**53, whose digits are already lost: store it as "
                                 "an integer (or a string of digits)")
        return int(f)
    raise InterpSotError(f"{what} = {shorten(repr(value))} is not a number")


def _target(value: object, what: str) -> int:
    target = _as_int(value, what)
    if target < 0:
        raise InterpSotError(f"{what} = {target} is negative: Countdown targets are >= 0 (see the loader's docstring)")
    return target


def _as_nums(value: object, what: str) -> tuple[int, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise InterpSotError(f"{what} = {shorten(repr(value))} is not a JSON list of numbers") from err
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # numpy / pyarrow arrays from parquet
        value = tolist()
    if not isinstance(value, (list, tuple)):
        raise InterpSotError(f"{what} must be a list of numbers, got {type(value).__name__}")
    return tuple(_as_int(v, f"{what}[{j}]") for j, v in enumerate(value))


def problems_from_records(
    records: Iterable[Mapping[str, object]], *, source: str, id_prefix: str, first_row: int = 0
) -> list[CountdownProblem]:
    """Validate TinyZero-style records; errors name the source and the record's row (``first_row`` + index)."""
    out: list[CountdownProblem] = []
    for i, rec in enumerate(records, start=first_row):
        where = f"{source}: record {i}"
        if not isinstance(rec, Mapping):
            raise InterpSotError(f"{where} is a {type(rec).__name__}, expected an object with 'target' and 'nums'")
        missing = [k for k in ("target", "nums") if k not in rec]
        if missing:
            raise InterpSotError(f"{where} lacks field(s) {missing} (TinyZero format: 'target', 'nums')")
        raw_id = rec.get("problem_id", rec.get("id"))
        pid = str(raw_id) if raw_id is not None and str(raw_id) else f"{id_prefix}-{i}"
        solution = rec.get("solution")
        out.append(
            CountdownProblem(
                pid,
                _as_nums(rec["nums"], f"{where} nums"),
                _target(rec["target"], f"{where} target"),
                solution if isinstance(solution, str) else None,
            )
        )
    ids = [p.problem_id for p in out]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise InterpSotError(f"{source}: problem id {dup!r} occurs more than once")
    return out


def _read_text_records(path: Path) -> list[Mapping[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise InterpSotError(f"{path}: line {n} is not valid JSON ({err.msg})") from err
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InterpSotError(f"{path}: not valid JSON ({err.msg})") from err
        if isinstance(data, dict) and "target" in data and "nums" in data:  # columns
            targets, nums = data["target"], data["nums"]
            if not isinstance(targets, list) or not isinstance(nums, list) or len(targets) != len(nums):
                raise InterpSotError(f"{path}: column form needs equal-length lists 'target' and 'nums'")
            return [{"target": t, "nums": n} for t, n in zip(targets, nums, strict=True)]
        if not isinstance(data, list):
            raise InterpSotError(f"{path}: expected a list of records or a dict of columns 'target'/'nums'")
        return data
    import pandas as pd

    frame = pd.read_csv(path)
    _check_columns(path, [str(c) for c in frame.columns])
    return [{str(k): v for k, v in rec.items()} for rec in frame.to_dict(orient="records")]


def _check_columns(path: Path, columns: list[str]) -> None:
    missing = [k for k in REQUIRED_FIELDS if k not in columns]
    if missing:
        raise InterpSotError(f"{path}: no column(s) {missing}; found {columns} (TinyZero format: 'target', 'nums')")


def _read_file(path: Path, window: range) -> tuple[list[Mapping[str, Any]], int]:
    """The records of ``path`` whose row numbers fall in ``window``, and the file's row count.

    Parquet files are sliced before any row becomes a Python object: TinyZero's test split is 1,024 rows of 490k.
    """
    if path.suffix.lower() != ".parquet":
        records = _read_text_records(path)
        return records[window.start : window.stop], len(records)
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    _check_columns(path, list(pf.schema_arrow.names))
    total = pf.metadata.num_rows
    start, stop = min(window.start, total), min(window.stop, total)
    if start >= stop:
        return [], total
    return pf.read().slice(start, stop - start).to_pylist(), total


def _read_hub_dataset(repo_id: str, split: str, window: range) -> tuple[list[Mapping[str, Any]], int]:
    """Records in ``window`` (row numbers over the split's files in order) and the split's row count."""
    from interp_sot.hub import dataset_split_files

    files = dataset_split_files(repo_id, split)
    logger.info("loading Countdown problems from %s (split %s): %d file(s)", repo_id, split, len(files))
    records: list[Mapping[str, Any]] = []
    offset = 0
    for f in files:
        if f.suffix.lower() not in FILE_SUFFIXES:
            raise InterpSotError(f"dataset {repo_id}: cannot read {f.name} (readable: {FILE_SUFFIXES})")
        local = range(max(window.start - offset, 0), max(window.stop - offset, 0))
        try:
            got, n = _read_file(f, local)
        except InterpSotError as err:
            raise InterpSotError(f"dataset {repo_id} (split {split}): {err}") from err
        records.extend(got)
        offset += n
    return records, offset


def load_tinyzero(
    source: str | Path,
    *,
    split: str = "train",
    limit: int | None = None,
    id_prefix: str | None = None,
    tinyzero_split: TinyZeroSplit | None = None,
) -> list[CountdownProblem]:
    """Problems from a local file or a Hub dataset id (see module doc).

    ``tinyzero_split``: keep only TinyZero's train or test rows (``"test"``: the paper's 1,024 problems, rows
    327,680..328,703 of the ``train`` split); the source must hold the whole ``train`` split. ``limit``: the first
    ``limit`` problems after that.
    """
    if limit is not None and limit < 0:
        raise InterpSotError(f"limit must be >= 0, got {limit}")
    rows = tinyzero_rows(tinyzero_split) if tinyzero_split is not None else None
    if rows is not None and split != "train":
        raise InterpSotError(f"TinyZero's {tinyzero_split} set is cut from the 'train' split, not {split!r}")
    from interp_sot.hub import looks_like_path

    window = rows if rows is not None else range(0, sys.maxsize)
    if limit is not None:
        window = range(window.start, min(window.stop, window.start + limit))
    if looks_like_path(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Countdown problem file not found (or not a file): {path}")
        records, total = _read_file(path, window)
        prefix = id_prefix or path.stem
        label = str(path)
    else:
        name = str(source)
        records, total = _read_hub_dataset(name, split, window)
        prefix = id_prefix or name.split("/")[-1]
        label = f"{name}[{split}]"
    if rows is not None and total < rows.stop:
        raise InterpSotError(
            f"{label} has {total} rows; TinyZero's {tinyzero_split} set needs rows {rows.start}..{rows.stop - 1} "
            "(give the whole train split of Jiayi-Pan/Countdown-Tasks-3to4)"
        )
    return problems_from_records(records, source=label, id_prefix=prefix, first_row=window.start)
