"""Files shipped with the package: the project's own SmolLM2 SAE and the held-out labelled screening corpus.

They make the full pipeline run offline on a fresh machine (``interp-sot demo``). Provenance, licences and the
commands that rebuild them are in ``CORPUS.md`` next to this file and in each SAE's ``training_report.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent
EMBEDDED_SAE = "smollm2-135m-l15-topk32-8k"
"""Name of the default SAE: TopK (k=32), 8,192 latents, SmolLM2-135M-Instruct layer 15 resid_post."""


def embedded_sae_path(name: str = EMBEDDED_SAE) -> Path:
    """Folder of a shipped SAE in sae-lens's format (``cfg.json`` + ``sae_weights.safetensors``)."""
    path = DATA_DIR / "saes" / name
    if not (path / "cfg.json").is_file():
        known = sorted(p.name for p in (DATA_DIR / "saes").iterdir() if p.is_dir())
        raise FileNotFoundError(f"no shipped SAE {name!r} in {path.parent}; shipped: {known}")
    return path


def screening_corpus_path() -> Path:
    """The held-out screening passages: gzipped JSONL, fields ``text``, ``conversational``, ``source``, ..."""
    return DATA_DIR / "corpora" / "screening.jsonl.gz"


PROMPTING_ARM = "society_of_thought.txt"
"""The prompting arm's default instruction file (``prompts/`` beside this module); copy and edit it, then pass
its path (``DemoConfig.prompted_instruction``, ``interp-sot steer --question-template``)."""


def prompting_instruction_path(name: str = PROMPTING_ARM) -> Path:
    """A shipped question template: text with a ``{problem}`` field where each question goes."""
    return DATA_DIR / "prompts" / name


def read_screening_corpus(path: Path | None = None) -> Iterable[dict[str, Any]]:
    """Records of the screening corpus (or of ``path``, .jsonl or .jsonl.gz), in file order: the order fixes
    sequence ids in the statistics."""
    from interp_sot.io import iter_jsonl

    return iter_jsonl(path or screening_corpus_path())
