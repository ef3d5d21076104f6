"""A statistics pass as the user names it: :class:`StatsRequest` (the model, SAE, corpus and output folder; its
fields are ``interp-sot stats``'s flags, :mod:`interp_sot.flags`) and :func:`run_stats`, which checks everything
cheap before anything heavy loads, plans the pass's memory, then runs :func:`~interp_sot.stages.stats.stats_stage`.

Pure Python at import (``interp-sot --help`` builds its flags from these fields); torch, transformers and sae-lens
load inside the functions. Nothing here prints: :func:`run_stats` returns what a caller shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from interp_sot.errors import FlagError, bad_input, shorten
from interp_sot.features.collect_config import CollectConfig
from interp_sot.stages.planning import Planned, PlanOptions, model_shape, shown_or_fits

if TYPE_CHECKING:
    from interp_sot.features.corpus import CorpusItem
    from interp_sot.protocols import CausalLM, SparseAutoencoder, Tokenizer
    from interp_sot.stages.stats import StatsResult

CORPUS_FIELDS = ("split", "txt_split")
""":class:`StatsRequest` fields that say how the corpus is read (the command's "corpus" flag group)."""
DEVICE_FIELDS = ("device", "dtype")
""":class:`StatsRequest` fields that say where and in which dtype the weights load."""


@dataclass(frozen=True, kw_only=True)
class StatsRequest:
    """What a statistics pass reads and where it writes, as named on the command line."""

    model: str
    """'smollm2', a model folder or a hub id."""
    sae: str
    """SAE folder (sae-lens save_model) or sae-lens release name."""
    sae_id: str | None = None
    """SAE id within the release (hub releases only)."""
    layer: int
    """Decoder layer L (resid_post = blocks.L.hook_resid_post)."""
    allow_layer_mismatch: bool = False
    """Use the SAE on --layer even though its config names another layer's hook."""
    corpus: str
    """Text/jsonl/parquet/csv file, saved dataset folder or hub name."""
    out: str
    """Output folder (rerun the same command to resume)."""
    split: str = "train"
    """Dataset split (hub/saved datasets)."""
    txt_split: Literal["line", "blank"] = "line"
    """.txt documents: one per line, or per blank-line-separated block."""
    device: str | None = None
    """Device for model and SAE (None: cuda if available)."""
    dtype: str | None = None
    """Model dtype, e.g. bfloat16 (None: as saved)."""

    def __post_init__(self) -> None:
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0:
            raise ValueError(f"--layer must be an int >= 0, got {self.layer!r}")

    def inputs(self) -> dict[str, object]:
        """The identity of the model, SAE and corpus (content hashes of local ones; a mistyped path is missing)."""
        from interp_sot.stages.identity import model_identity, sae_identity, source_identity

        return {"model": model_identity(self.model), "sae": sae_identity(self.sae, self.sae_id),
                "corpus": source_identity(self.corpus, self.split)}

    def info(self) -> dict[str, object]:
        """The names as given, recorded in the statistics' ``info``."""
        return {"model": self.model, "sae": self.sae, "sae_id": self.sae_id, "corpus": self.corpus}

    def load_sae(self, device: str) -> SparseAutoencoder:
        """The SAE on ``device``, refused when its config names another layer (unless ``allow_layer_mismatch``)."""
        from interp_sot.features.sae import check_sae_layer, load_sae

        with bad_input(f"--sae {shorten(self.sae)}"):
            sae = load_sae(self.sae, self.sae_id, device=device)
            check_sae_layer(sae, self.layer, allow_mismatch=self.allow_layer_mismatch)
        return sae

    def open_corpus(self) -> Iterable[CorpusItem]:
        from interp_sot.corpora.reader import open_corpus

        with bad_input(f"--corpus {shorten(self.corpus)}"):
            corpus: Iterable[CorpusItem] = open_corpus(self.corpus, self.split, self.txt_split)
        return corpus

    def load_model(self, device: str) -> tuple[CausalLM, Tokenizer]:
        import torch

        from interp_sot.models import load_model
        from interp_sot.stages.sources import model_not_found

        try:
            return load_model(self.model, dtype=getattr(torch, self.dtype) if self.dtype else None, device=device)
        except OSError as err:
            raise model_not_found(self.model, err) from err


def stats_plan(request: StatsRequest, collect: CollectConfig, options: PlanOptions, sae: SparseAutoencoder,
               device: str) -> Planned | None:
    """The plan of a pass over ``collect.max_tokens`` tokens (one batch without it) on ``device``, where ``sae``
    already lies, from the model's config alone; None when there is nothing to plan against (no ``options.plan``
    and no known device memory)."""
    from interp_sot.plan import plan_stats

    resident = sum(t.numel() * t.element_size() for t in sae.state_dict().values())
    available = options.device_bytes(device, resident_bytes=resident)
    if not options.plan and available is None:
        return None
    shape, dtype = model_shape(request.model, request.dtype)
    d_sae = int(sae.cfg.d_sae)
    plan = plan_stats(shape, tokens=collect.max_tokens or collect.batch_tokens, batch_tokens=collect.batch_tokens,
                      d_sae=d_sae, chunk_size=collect.chunk_size, dtype=dtype, device_bytes=available)
    return Planned(plan, f"{request.model} ({shape.n_params:,} parameters, {dtype}), SAE with {d_sae:,} features")


def process_device(request: StatsRequest) -> tuple[str, bool]:
    """This process's device and whether it writes the result: under ``torchrun`` the rank's device (joining the
    process group) and rank 0; otherwise ``request.device`` (cuda when available) and True."""
    import torch

    from interp_sot.features.distributed import init_from_env, launched_by_torchrun

    if launched_by_torchrun():
        import torch.distributed as dist

        return str(init_from_env()), dist.get_rank() == 0
    return request.device or ("cuda" if torch.cuda.is_available() else "cpu"), True


def run_stats(request: StatsRequest, collect: CollectConfig | None = None,
              plan: PlanOptions | None = None) -> StatsResult | Planned | None:
    """Run (or resume) the statistics pass ``request`` names with the pass settings ``collect``.

    Before the SAE or the model loads: the inputs exist, the corpus decodes, the output folder is usable and holds
    no other run. The SAE loads next (its layer checked), then the memory plan: with ``plan.plan`` it is returned
    (:class:`~interp_sot.stages.planning.Planned`; nothing written), otherwise a batch that cannot fit the device raises
    :class:`~interp_sot.plan.PlanError` before ``stage.json`` is written. Then the model loads and the pass runs.
    Returns its :class:`~interp_sot.stages.stats.StatsResult`, or None on a non-zero rank of a ``torchrun`` job."""
    from interp_sot.features.distributed import launched_by_torchrun
    from interp_sot.io import check_text_file
    from interp_sot.stages.rundir import begin_stage, check_identity
    from interp_sot.stages.stats import STAGE, StatsConfig, stats_stage

    plan = plan or PlanOptions()
    config = StatsConfig(layer=request.layer, collect=collect or CollectConfig())
    if plan.plan and config.collect.max_tokens is None:
        raise FlagError("--plan needs --max-tokens (the corpus is not read to count its tokens)")
    inputs = request.inputs()
    check_text_file(request.corpus, "--corpus")  # a decode error names file and line, before anything is claimed
    device, main_rank = process_device(request)
    if not plan.plan and main_rank:  # under torchrun rank 0 claims for every rank
        check_identity(request.out, STAGE, config.identity(), inputs)
    sae = request.load_sae(device)
    # the plan comes before begin_stage: batch_tokens is part of the run's identity
    planned = shown_or_fits(stats_plan(request, config.collect, plan, sae, device), plan)
    if planned is not None:
        return planned
    if not launched_by_torchrun():  # under torchrun the stage lets rank 0 alone claim the folder
        begin_stage(request.out, STAGE, config.identity(), inputs)
    corpus = request.open_corpus()
    model, tokenizer = request.load_model(device)
    return stats_stage(model, tokenizer, sae, corpus, config, request.out, inputs=inputs, info=request.info(),
                       allow_layer_mismatch=request.allow_layer_mismatch)
