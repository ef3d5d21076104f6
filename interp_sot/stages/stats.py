"""Stage ``stats``: one fused pass of an SAE over a corpus -> per-feature statistics and top-k contexts.

Reads: a model + tokenizer, an SAE, a corpus (any iterable of documents). Writes into its directory:
``stats.safetensors`` + ``stats.json`` (:class:`~interp_sot.features.stats.FeatureStats`), ``contexts.safetensors``
(:class:`~interp_sot.features.contexts.ContextStore`), ``features.parquet`` (or ``.csv`` without pyarrow, one row
per feature), ``checkpoint/`` (resumes an interrupted pass) and the run files of :mod:`interp_sot.stages.rundir`.
Under ``torchrun`` every rank takes a shard of the corpus and rank 0 writes the merged result.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from interp_sot.features.collect import CollectConfig, collect
from interp_sot.features.contexts import CONTEXTS_FILE
from interp_sot.features.corpus import count_truncations
from interp_sot.features.sae import check_sae_layer
from interp_sot.features.stats import STATS_FILE, SUMMARY_FILE, FeatureStats
from interp_sot.io import write_table
from interp_sot.stages.rundir import begin_stage, finish_stage

if TYPE_CHECKING:
    from interp_sot.features.corpus import CorpusItem
    from interp_sot.protocols import CausalLM, SparseAutoencoder, Tokenizer

logger = logging.getLogger(__name__)

STAGE = "stats"


@dataclass(frozen=True)
class StatsConfig:
    """What the statistics pass reads and counts."""

    layer: int
    """Decoder layer L whose output (sae-lens ``blocks.L.hook_resid_post``) the SAE encodes."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    """Batching, windows, top-k, checkpointing (see :class:`~interp_sot.features.collect.CollectConfig`)."""

    def __post_init__(self) -> None:
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0:
            raise ValueError(f"StatsConfig.layer must be an int >= 0, got {self.layer!r}")

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share (progress bars, checkpoint spacing and max_tokens may change)."""
        return {"layer": self.layer, "collect": self.collect.fingerprint()}


class StatsResult(NamedTuple):
    """The statistics and where they were written."""

    stats: FeatureStats
    out: Path
    table: Path
    """The per-feature table (``features.parquet`` or ``features.csv``)."""


def stats_stage(
    model: CausalLM,
    tokenizer: Tokenizer,
    sae: SparseAutoencoder,
    corpus: Iterable[CorpusItem],
    config: StatsConfig,
    out: str | Path,
    *,
    inputs: Mapping[str, object] | None = None,
    info: Mapping[str, object] | None = None,
    allow_layer_mismatch: bool = False,
) -> StatsResult | None:
    """Run (or resume) the statistics pass into ``out``; None on non-zero ranks of a distributed run.

    ``inputs`` identifies the model, SAE and corpus (content hashes, see :mod:`interp_sot.stages.identity`): a
    rerun into ``out`` with other inputs or settings is refused instead of mixing two corpora. Without ``inputs``
    they are computed from the objects (:func:`~interp_sot.stages.identity.object_inputs`; a one-pass corpus
    iterator is refused then, since its content cannot be identified). ``info`` is copied into the statistics'
    ``info`` (e.g. the names given on the command line), with ``truncated_documents``: how many documents this pass
    cut to ``max_length`` (logged once; a pass resumed from a checkpoint counts those cut since the resume). An SAE
    whose config names another layer's hook is refused unless
    ``allow_layer_mismatch``.
    """
    from interp_sot.features.distributed import collect_distributed, launched_by_torchrun
    from interp_sot.stages.identity import object_inputs

    out = Path(out)
    check_sae_layer(sae, config.layer, allow_mismatch=allow_layer_mismatch)
    if inputs is None:
        inputs = object_inputs(model, sae, corpus)
    ckpt = out / "checkpoint"
    with count_truncations() as cut:
        if launched_by_torchrun():
            import torch.distributed as dist

            # one claimant: two ranks writing stage.json at once would delete each other's temporary file
            resumed = dist.get_rank() == 0 and begin_stage(out, STAGE, config.identity(), inputs)
            dist.barrier()
            stats = collect_distributed(model, tokenizer, corpus, config.layer, sae, config.collect,
                                        checkpoint_dir=ckpt)
            counts: list[int | None] = [None] * dist.get_world_size()
            dist.all_gather_object(counts, cut.documents)  # every rank's shard was cut on its own
            if dist.get_rank() != 0:
                return None
            truncated = sum(c or 0 for c in counts)
        else:
            resumed = begin_stage(out, STAGE, config.identity(), inputs)
            stats = collect(model, tokenizer, corpus, config.layer, sae, config.collect, checkpoint_dir=ckpt)
            truncated = cut.documents
    if resumed and (out / SUMMARY_FILE).is_file():  # a finished pass read back from its checkpoint counts nothing
        previous = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8")).get("info", {})
        truncated = max(truncated, int(previous.get("truncated_documents", 0) or 0))
    if truncated:
        logger.warning("%s: %d document(s) were cut to max_length=%d tokens (recorded as info.truncated_documents)",
                       out, truncated, config.collect.max_length)
    stats.info.update(dict(info or {}))
    stats.info["truncated_documents"] = truncated
    stats.save(out)
    table = write_table(stats.to_frame(), out / "features")
    files = [STATS_FILE, SUMMARY_FILE, table.name]
    if stats.contexts is not None:
        files.append(CONTEXTS_FILE)
    nonfinite = int(stats.nonfinite_count.sum())
    finish_stage(out, STAGE, files, {"n_tokens": stats.n_tokens, "fired": int((stats.fire_count > 0).sum()),
                                     "d_sae": stats.d_sae, "nonfinite": nonfinite, "truncated_documents": truncated})
    return StatsResult(stats, out, table)
