"""A steering spec in other tools' formats: lm-eval's steered ``.pt``, lm-eval's sae-lens CSV, Neuronpedia's steer JSON.

Each tool has one convention that differs from interp_sot's ``h' = h + s * direction``:

- lm-eval (``--model steered``, ``lm_eval/models/hf_steered.py``) adds ``steering_coefficient * steering_vector``
  at every position through a forward hook on a module's output, named under ``model.base_model`` (``layers.15``
  for Llama-type models, ``h.15`` for GPT-2). That is our ``resid_post`` with scope ``all``; ``resid_pre`` of
  layer L is exported as the output of layer L - 1, and scope ``generated`` cannot be expressed. The ``.pt`` holds
  the direction per unit of s as ``steering_vector`` and s as ``steering_coefficient``.
- lm-eval's CSV (``loader=sae_lens``) and Neuronpedia both multiply the SAE's *raw* decoder row W_dec[f], so their
  coefficient is ``s * ‖direction‖ / ‖W_dec[f]‖`` (equal to s in ``sae`` units). lm-eval 0.4.13 itself cannot
  use an ``add`` row of its CSV with an SAE that has a decoder bias (it passes ``b_dec`` as bias, which ``add``
  refuses), and it indexes ``SAE.from_pretrained(...)[0]``, which sae-lens >= 6 does not return: the ``.pt`` is the
  form that runs.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from interp_sot.errors import InterpSotError, shorten
from interp_sot.io import atomic_path, atomic_write_text
from interp_sot.steering.spec import SteeringSpec, check_strength, load_spec_sae, spec_direction

if TYPE_CHECKING:
    from interp_sot.protocols import CausalLM

ExportFormat = Literal["lm-eval", "lm-eval-csv", "neuronpedia"]
EXPORT_FORMATS: tuple[str, ...] = ("lm-eval", "lm-eval-csv", "neuronpedia")
CSV_COLUMNS = ("loader", "action", "sparse_model", "hookpoint", "feature_index", "steering_coefficient",
               "head_index", "sae_id", "description")
"""lm-eval 0.4.13's steering CSV columns, in its documented order."""


def model_skeleton(model_id: str) -> nn.Module:
    """The model's module tree without weights (meta device), from its config alone: hookpoint names cost no load."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from interp_sot.models import model_source

    try:
        config = AutoConfig.from_pretrained(model_source(model_id))
    except OSError as err:
        raise InterpSotError(f"cannot read the config of model {shorten(model_id)}: {err}") from err
    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    except ValueError as err:
        raise InterpSotError(f"unsupported architecture for hookpoint export: {type(config).__name__} is not a "
                             f"causal LM transformers can build ({shorten(err)})") from err


def hookpoint(model: CausalLM | nn.Module, spec: SteeringSpec) -> str:
    """lm-eval's hookpoint for the spec: the name, under ``model.base_model``, of the module whose output is the
    steered residual stream (decoder layer ``layer``, or ``layer - 1`` for ``resid_pre``)."""
    from interp_sot.layers import decoder_layers, unwrap

    module = unwrap(model)
    arch = type(module).__name__
    if spec.scope != "all":
        raise InterpSotError(f"lm-eval adds at every position; scope {spec.scope!r} cannot be exported (use 'all')")
    index = spec.layer if spec.site == "resid_post" else spec.layer - 1
    if index < 0:
        raise InterpSotError("resid_pre of layer 0 is the embedding output, which lm-eval's hook does not steer as "
                             "our hook does; export resid_post of a layer instead")
    try:
        layers = decoder_layers(module, spec.layers_path)
    except ValueError as err:
        raise InterpSotError(f"unsupported architecture for hookpoint export: {arch} ({err})") from err
    if index >= len(layers):
        raise InterpSotError(f"layer {index} out of range: {arch} has layers 0..{len(layers) - 1}")
    target = layers[index]
    base = getattr(module, "base_model", module)
    for name, sub in base.named_modules() if isinstance(base, nn.Module) else ():
        if sub is target:
            return name
    raise InterpSotError(f"unsupported architecture for hookpoint export: {arch}'s decoder layers are not under "
                         "its base_model, where lm-eval looks for hookpoints")


def lm_eval_steer_config(spec: SteeringSpec, strength: float, model: CausalLM | nn.Module | None = None,
                         direction: torch.Tensor | None = None) -> dict[str, dict[str, Any]]:
    """What lm-eval's ``steered`` model loads: ``{hookpoint: {steering_vector, steering_coefficient, action, bias,
    head_index}}`` (``model``: the model or its skeleton; built from ``spec.model``'s config when None)."""
    s = check_strength(strength)
    point = hookpoint(model if model is not None else model_skeleton(spec.model), spec)
    vec = spec_direction(spec) if direction is None else direction
    return {point: {"steering_vector": vec.detach().to(torch.float32).cpu().clone(), "steering_coefficient": s,
                    "action": "add", "bias": None, "head_index": None}}


def export_lm_eval(spec: SteeringSpec, strength: float, out: str | Path,
                   model: CausalLM | nn.Module | None = None) -> Path:
    """Write lm-eval's steered ``.pt`` (``--model steered --model_args pretrained=...,steer_path=OUT``)."""
    out = Path(out)
    if out.suffix not in (".pt", ".pth"):
        raise InterpSotError(f"lm-eval reads a steering file ending in .pt or .pth, not {shorten(out.name)}")
    config = lm_eval_steer_config(spec, strength, model)
    with atomic_path(out) as tmp:
        torch.save(config, tmp)
    return out


def raw_row_coefficient(spec: SteeringSpec, strength: float) -> float:
    """The coefficient of the raw decoder row W_dec[f] that adds the spec's vector at ``strength``."""
    s = check_strength(strength)
    if spec.direction.feature is None:
        raise InterpSotError("this steering spec has no SAE feature: only the lm-eval .pt export can carry its vector")
    if spec.units == "sae":
        return s
    dec = spec.direction.decoder_norm
    if dec is None:
        from interp_sot.steering.directions import decoder_matrix

        dec = float(decoder_matrix(load_spec_sae(spec))[spec.direction.feature].detach().float().norm())
    return s * float(spec_direction(spec).norm()) / dec


def sae_lens_csv(spec: SteeringSpec, strength: float, model: CausalLM | nn.Module | None = None) -> str:
    """lm-eval's steering CSV (one ``sae_lens`` row) for a spec whose SAE is a sae-lens release."""
    d = spec.direction
    if d.sae_release is None or d.sae_id is None:
        raise InterpSotError("lm-eval's sae-lens CSV loads the SAE by release: the spec's direction needs "
                             "sae_release and sae_id (it names "
                             + (shorten(d.sae_path) if d.sae_path else "none") + ")")
    point = hookpoint(model if model is not None else model_skeleton(spec.model), spec)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerow(["sae_lens", "add", d.sae_release, point, d.feature, repr(raw_row_coefficient(spec, strength)),
                     "", d.sae_id, f"interp_sot feature {d.feature} at s={strength:g} {spec.units}"])
    return buf.getvalue()


def neuronpedia_request(spec: SteeringSpec, strength: float, prompt: str = "", *, n_tokens: int = 64,
                        temperature: float = 0.5, seed: int = 16) -> dict[str, Any]:
    """Neuronpedia's steer request body (``POST /api/steer``) for the spec's feature at ``strength``."""
    d = spec.direction
    if not d.neuronpedia_id or "/" not in d.neuronpedia_id:
        raise InterpSotError("Neuronpedia names an SAE as MODEL/SOURCE (e.g. gpt2-small/0-res-jb): set the spec's "
                             f"direction.neuronpedia_id (got {shorten(d.neuronpedia_id)})")
    model_id, source = d.neuronpedia_id.split("/", 1)
    coefficient = raw_row_coefficient(spec, strength)
    return {"prompt": prompt, "modelId": model_id,
            "features": [{"modelId": model_id, "layer": source, "index": int(d.feature or 0),
                          "strength": coefficient}],
            "temperature": temperature, "n_tokens": n_tokens, "freq_penalty": 0, "seed": seed,
            "strength_multiplier": 1, "steer_method": "SIMPLE_ADDITIVE", "normalize_steering": False}


def export_spec(spec: SteeringSpec, strength: float, fmt: ExportFormat, out: str | Path,
                model: CausalLM | nn.Module | None = None,
                prompt: str = "") -> Path:
    """Write the spec at ``strength`` in ``fmt`` to ``out``; returns ``out``."""
    if fmt == "lm-eval":
        return export_lm_eval(spec, strength, out, model)
    if fmt == "lm-eval-csv":
        atomic_write_text(out, sae_lens_csv(spec, strength, model))
        return Path(out)
    if fmt == "neuronpedia":
        atomic_write_text(out, json.dumps(neuronpedia_request(spec, strength, prompt), indent=2) + "\n")
        return Path(out)
    raise InterpSotError(f"unknown export format {shorten(fmt)!r}; known: {', '.join(EXPORT_FORMATS)}")
