"""Opening a corpus named on the command line: a local file or folder, or a ``datasets`` hub name.

``spec``: a ``.txt`` file (one document per line, or per blank-line-separated block with ``txt_split="blank"``),
a ``.jsonl``/``.jsonl.gz`` file of records, a ``.parquet``/``.csv``/``.json`` file, a folder written by
``datasets.save_to_disk``, or a Hub dataset id ``org/name`` (streamed from the hub cache, so ``HF_HUB_OFFLINE=1``
works). Anything written like a path (:func:`interp_sot.hub.looks_like_path`) that does not exist is an error, never
a Hub lookup.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from interp_sot.hub import looks_like_path


def _txt_documents(path: Path, split: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        if split == "line":
            for line in fh:
                if line.strip():
                    yield line.rstrip("\n")
            return
        block: list[str] = []
        for line in fh:
            if line.strip():
                block.append(line.rstrip("\n"))
            elif block:
                yield "\n".join(block)
                block = []
        if block:
            yield "\n".join(block)


def open_corpus(spec: str, split: str = "train", txt_split: str = "line") -> Any:
    """An iterable of documents (see the module docstring)."""
    path = Path(spec).expanduser()
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".txt"):
            return _txt_documents(path, txt_split)
        if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
            from interp_sot.io import iter_jsonl

            return iter_jsonl(path)
        import datasets

        for suffix, builder in ((".parquet", "parquet"), (".csv", "csv"), (".json", "json")):
            if name.endswith(suffix):
                return datasets.load_dataset(builder, data_files=str(path), split="train")
        raise ValueError(f"--corpus {path}: unknown file type (use .txt, .jsonl, .jsonl.gz, .parquet, .csv, .json)")
    import datasets

    if path.is_dir():
        ds = datasets.load_from_disk(str(path))
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    if looks_like_path(spec):  # a mistyped local path says so instead of asking the Hub
        raise FileNotFoundError(f"--corpus {spec}: no such file or folder")
    return _hub_corpus(spec, split)


HUB_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".txt": "text",
                ".arrow": "arrow"}
"""Data-file suffix -> the ``datasets`` builder that streams it."""


def _hub_corpus(repo_id: str, split: str) -> Any:
    """Hub dataset ``repo_id``'s ``split``, streamed from the files in the hub cache (:mod:`interp_sot.hub`), so
    ``HF_HUB_OFFLINE=1`` reads what ``huggingface-cli download --repo-type dataset`` fetched (``datasets`` offline
    looks only in its own cache)."""
    import datasets

    from interp_sot.hub import dataset_split_files

    files = dataset_split_files(repo_id, split)
    suffixes = sorted({f.suffix.lower() for f in files})
    if len(suffixes) != 1 or suffixes[0] not in HUB_BUILDERS:
        raise ValueError(f"--corpus {repo_id} (split {split}): cannot stream files of type {suffixes} "
                         f"(readable: one of {sorted(HUB_BUILDERS)})")
    return datasets.load_dataset(HUB_BUILDERS[suffixes[0]], data_files=[str(f) for f in files], split="train",
                                 streaming=True)
