"""Files of a Hugging Face Hub repository, read through the hub cache, so offline mode works as users expect.

``datasets.load_dataset(repo_id)`` with ``HF_HUB_OFFLINE=1`` looks only in the datasets library's own cache, so a
dataset whose files sit in the hub cache exactly as ``huggingface-cli download --repo-type dataset`` (or
``hf download``) leaves them still fails with ``OfflineModeIsEnabled``. Here the snapshot is resolved with
``huggingface_hub.snapshot_download`` (``local_files_only`` when offline) and a split's data files are picked by the
same file-name conventions ``datasets`` uses (``data/train-00000-of-00001.parquet`` ...), so the files are read
where they lie. A source that looks like a file or folder is never sent to the Hub.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".txt", ".arrow")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def looks_like_path(source: str | Path) -> bool:
    """Whether ``source`` names a local file or folder rather than a Hub repository id.

    Anything that exists, starts like a path (``.``, ``/``, ``~``), has more than one ``/``, ends in a data-file
    suffix, or whose first component is an existing local folder is a path: a mistyped ``bad/nope.jsonl`` or
    ``data/nope_problems`` (with a local ``data/``) must say "file not found", never query the Hub.
    """
    if isinstance(source, Path):
        return True
    text = str(source)
    return (
        Path(text).expanduser().exists()
        or Path(text.split("/", 1)[0]).is_dir()
        or text.startswith((".", "/", "~"))
        or text.count("/") != 1
        or text.lower().endswith(DATA_SUFFIXES)
        or not _REPO_ID.match(text)
    )


def snapshot_folder(
    repo_id: str,
    *,
    repo_type: str = "dataset",
    revision: str | None = None,
    allow_patterns: list[str] | None = None,
) -> Path:
    """The local snapshot folder of ``repo_id``: from the hub cache when offline, else downloaded into it.

    Raises FileNotFoundError naming the id and HF_HUB_OFFLINE when offline and the repository is not cached.
    """
    from huggingface_hub import is_offline_mode, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    offline = is_offline_mode()
    try:
        folder = snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            allow_patterns=allow_patterns,
            local_files_only=offline,
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        from huggingface_hub import constants

        kind = "dataset" if repo_type == "dataset" else repo_type
        raise FileNotFoundError(
            f"{kind} {repo_id!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE=1 "
            f"forbids downloading it: run `huggingface-cli download --repo-type {kind} {repo_id}` where the Hub is "
            "reachable (same HF_HOME), or unset HF_HUB_OFFLINE"
        ) from err
    logger.info("%s %s: snapshot %s", repo_type, repo_id, folder)
    return Path(folder)


def split_files(folder: Path, split: str) -> list[Path]:
    """The data files of ``split`` in a dataset snapshot, by ``datasets``' own file-name conventions.

    Raises ValueError listing the splits found when ``split`` is not among them.
    """
    from datasets.data_files import get_data_patterns, resolve_pattern

    try:
        patterns = get_data_patterns(str(folder))
    except FileNotFoundError as err:
        raise ValueError(f"{folder}: no data files found ({err})") from err
    if split not in patterns:
        raise ValueError(f"{folder}: no split {split!r}; found splits {sorted(patterns)}")
    files = sorted({Path(p) for pattern in patterns[split] for p in resolve_pattern(pattern, str(folder))})
    files = [f for f in files if f.suffix.lower() in DATA_SUFFIXES]
    if not files:
        raise ValueError(f"{folder}: split {split!r} has no data files with a suffix in {DATA_SUFFIXES}")
    return files


def dataset_split_files(repo_id: str, split: str, *, revision: str | None = None) -> list[Path]:
    """Data files of ``split`` of Hub dataset ``repo_id`` (see :func:`snapshot_folder` for offline behaviour)."""
    return split_files(snapshot_folder(repo_id, revision=revision), split)
