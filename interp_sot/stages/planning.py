"""The time and memory plan of a run, from the model's config alone (before any weights load): what ``--plan``
prints, and the refusal of a batch that cannot fit the device (:mod:`interp_sot.plan` computes the numbers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from interp_sot.plan import GenerationPlan, ModelShape, StatsPlan
    from interp_sot.stages.sources import ModelSource
    from interp_sot.tasks.countdown.problems import CountdownProblem
    from interp_sot.tasks.countdown.prompts import PromptSpec

HEADROOM = 0.1
"""Share of the device memory a plan keeps free for the allocator and kernels."""


@dataclass(frozen=True)
class PlanOptions:
    """Whether to only print the plan, and the device memory to plan for."""

    plan: bool = False
    """Print rows, batches, decode steps and the memory plan, then exit (no weights loaded, nothing written)."""
    device_memory_gib: float | None = None
    """Device memory to plan for in GiB, e.g. 80 to plan an H100 run from a laptop (None: CUDA's free memory; not
    checked on CPU/MPS); 10% is kept free."""

    def __post_init__(self) -> None:
        if self.device_memory_gib is not None and not self.device_memory_gib > 0:
            raise ValueError(f"--device-memory-gib must be > 0, got {self.device_memory_gib}")

    def device_bytes(self, device: str, resident_bytes: int = 0) -> int | None:
        """Memory a run may plan on: ``device_memory_gib`` minus the headroom, else CUDA's free memory (plus
        ``resident_bytes`` this run already holds there); None when unknown (CPU, MPS)."""
        from interp_sot.plan import GIB, device_memory

        if self.device_memory_gib is not None:
            return int(self.device_memory_gib * GIB * (1 - HEADROOM))
        return device_memory(device, headroom=HEADROOM, resident_bytes=resident_bytes)


class Planned(NamedTuple):
    """A run's time and memory plan (with ``--plan`` nothing was loaded or written) and a line saying what it
    plans: what ``--plan`` shows."""

    plan: GenerationPlan | StatsPlan
    what: str


def shown_or_fits(planned: Planned | None, options: PlanOptions) -> Planned | None:
    """With ``options.plan``: ``planned`` (the caller shows it and stops). Otherwise raise PlanError when it cannot
    fit the device, before anything is written (so the rerun with the suggested batch starts clean); None when the
    run may go on."""
    if planned is None or options.plan:
        return planned
    from interp_sot.plan import require_fit

    require_fit(planned.plan)
    return None


def model_shape(name: str, dtype: str | None) -> tuple[ModelShape, str]:
    """(ModelShape from the config alone, the weights' dtype name: ``dtype``, or the config's for auto/None)."""
    from transformers import AutoConfig

    from interp_sot.models import model_source
    from interp_sot.plan import ModelShape
    from interp_sot.stages.sources import model_not_found

    try:
        config = AutoConfig.from_pretrained(model_source(name))
    except OSError as err:
        raise model_not_found(name, err) from err
    if dtype in (None, "auto"):
        dtype = str(getattr(config, "dtype", None) or "float32").removeprefix("torch.")
    return ModelShape.from_config(config), str(dtype)


def generation_plan(options: PlanOptions, model: ModelSource, problems: list[CountdownProblem], prompt: PromptSpec,
                    *, rows: int, batch_size: int, max_new_tokens: int) -> Planned | None:
    """The plan of generating ``rows`` completions of ``problems``' prompts and a line saying what it plans, or
    None when there is nothing to plan against (no ``--plan``, and no known device memory)."""
    from interp_sot.plan import plan_generation
    from interp_sot.stages.bounds import prompt_lengths

    available = options.device_bytes(model.device or "cpu")
    if not options.plan and available is None:
        return None
    shape, dtype = model_shape(model.model, model.dtype)
    longest = max(prompt_lengths(problems, prompt, model.config_and_tokenizer()[1]))
    plan = plan_generation(shape, rows=rows, batch_size=batch_size, prompt_tokens=longest,
                           max_new_tokens=max_new_tokens, dtype=dtype, device_bytes=available)
    return Planned(plan, f"{model.model} ({shape.n_params:,} parameters, {dtype}), prompts up to {longest:,} tokens")
