"""The portable steering spec (``steering.json``): what a strength means outside the run that chose it.

A strength s is meaningful only with its model, layer, site, scope, direction and units. The spec records all of
them, versioned, so that ``interp-sot eval``, the exports (:mod:`interp_sot.steering.export`) and the Python
:func:`steer_from_spec` reproduce exactly the vector a run added: ``h' = h + s * direction``, where ``direction`` is
the vector one unit of s adds. It comes from a saved vector file (what every steer/dose run writes next to its
spec), or from an SAE feature recomputed in the spec's units with the recorded scale (the median residual norm for
``resid``, the feature's max activation for ``max_act``). ``docs/steering_spec.md`` documents the format.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsFloat, cast

import torch

from interp_sot.errors import InterpSotError, shorten
from interp_sot.io import atomic_write_json, write_safetensors
from interp_sot.steering.hook import SCOPES, SITES, Scope, Site, SteeringHandle, steer
from interp_sot.steering.strength_units import STRENGTH_UNITS

if TYPE_CHECKING:
    from torch import nn

    from interp_sot.protocols import CausalLM, SparseAutoencoder
    from interp_sot.steering.hook import Strength

SPEC_VERSION = 1
SPEC_FILE = "steering.json"
VECTOR_FILE = "steering.safetensors"
SpecUnits = str
"""A registered strength unit (:data:`interp_sot.steering.units.STRENGTH_UNITS`) or ``raw`` (a bare vector)."""


def spec_units() -> tuple[str, ...]:
    """The units a spec may name: every registered strength unit, and ``raw``."""
    return (*STRENGTH_UNITS, "raw")
"""``strength_units`` units, plus ``raw``: the saved vector itself is what one unit of s adds (a custom direction)."""
NORM_RTOL = 1e-4
"""Relative tolerance between a resolved direction's norm and the ``unit_norm`` the spec recorded."""


def _fail(message: str) -> InterpSotError:
    return InterpSotError(f"steering spec: {message}")


@dataclass(frozen=True)
class DirectionSource:
    """Where the direction comes from: a saved vector, an SAE feature, or both (the vector wins; the SAE is
    provenance, and what the sae-lens CSV and Neuronpedia exports name)."""

    vector: str | None = None
    """A .safetensors/.pt/.npy file holding the direction per unit of s ([d_model]); relative to the spec's folder."""
    key: str | None = None
    """Tensor name inside a .safetensors ``vector`` file holding several directions (None: ``direction`` or the only
    one)."""
    feature: int | None = None
    """SAE feature index (latent)."""
    sae_path: str | None = None
    """Local sae-lens SAE folder."""
    sae_release: str | None = None
    """sae-lens release name (with ``sae_id``)."""
    sae_id: str | None = None
    """sae-lens SAE id inside ``sae_release``."""
    neuronpedia_id: str | None = None
    """Neuronpedia ``MODEL/SOURCE`` of the SAE (e.g. ``gpt2-small/0-res-jb``), for the Neuronpedia export."""
    decoder_norm: float | None = None
    """‖W_dec[feature]‖ of the SAE: turns s into the raw-decoder-row coefficient of lm-eval's CSV and Neuronpedia."""

    def __post_init__(self) -> None:
        if self.feature is not None and (isinstance(self.feature, bool) or not isinstance(self.feature, int)
                                         or self.feature < 0):
            raise _fail(f"direction.feature must be an integer >= 0, got {shorten(self.feature)}")
        if self.sae_release is not None and self.sae_id is None:
            raise _fail(f"direction.sae_release {shorten(self.sae_release)} needs direction.sae_id")
        if self.sae_path is not None and self.sae_release is not None:
            raise _fail("direction: give sae_path or sae_release (not both)")
        has_sae = self.sae_path is not None or self.sae_release is not None
        if has_sae and self.feature is None:
            raise _fail("direction: an SAE source needs direction.feature")
        if self.vector is None and not has_sae:
            raise _fail("direction: give a vector file, or an SAE (sae_path, or sae_release + sae_id) and a feature")
        if self.decoder_norm is not None and not (math.isfinite(self.decoder_norm) and self.decoder_norm > 0):
            raise _fail(f"direction.decoder_norm must be a finite number > 0, got {self.decoder_norm!r}")


@dataclass(frozen=True)
class SteeringSpec:
    """One steering intervention, portable: h' = h + s * direction at ``layer``'s ``site`` on ``scope``."""

    model: str
    """The model: a hub id, a local folder, or ``smollm2`` (the offline SmolLM2-135M-Instruct)."""
    d_model: int
    """Residual width the direction was made for; a model of another width is refused."""
    layer: int
    """Decoder layer (0-based; ``resid_post`` of L is sae-lens ``blocks.L.hook_resid_post``)."""
    direction: DirectionSource
    """Where the direction per unit of s comes from."""
    units: SpecUnits = "raw"
    """What one unit of s adds (``steering.strength_units``), or ``raw``: the saved vector as is."""
    residual_norm: float | None = None
    """Median per-token residual norm at ``layer`` the units were judged against (needed by ``resid`` units)."""
    max_act: float | None = None
    """The feature's max activation on the screening corpus (needed by ``max_act`` units)."""
    unit_norm: float | None = None
    """‖direction‖: a resolved direction of another norm is refused (a wrong SAE, vector file or scale)."""
    site: Site = "resid_post"
    """``resid_post`` (layer output) or ``resid_pre`` (layer input)."""
    scope: Scope = "all"
    """``all`` positions, or only ``generated`` tokens."""
    layers_path: str | None = None
    """Dotted path of the decoder ModuleList for architectures the hook does not recognise."""
    strengths: tuple[float, ...] = ()
    """The strengths the run used (in ``units``)."""
    model_sha256: str | None = None
    """Content hash of a local model folder (its name alone does not say which weights)."""
    version: int = SPEC_VERSION
    """Format version of ``steering.json``."""
    base: Path | None = field(default=None, compare=False, repr=False)
    """Folder the spec was read from: relative vector and SAE paths resolve against it (not written)."""

    def __post_init__(self) -> None:
        if self.version != SPEC_VERSION:
            raise _fail(f"version {self.version!r} is not supported (this interp_sot reads version {SPEC_VERSION})")
        if not isinstance(self.model, str) or not self.model:
            raise _fail(f"model must be a non-empty string, got {shorten(self.model)}")
        for name in ("d_model", "layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "d_model" else 0):
                raise _fail(f"{name} must be an integer >= {1 if name == 'd_model' else 0}, got {shorten(value)}")
        if self.units not in spec_units():
            raise _fail(f"units must be one of {spec_units()}, got {shorten(self.units)}")
        if self.site not in SITES:
            raise _fail(f"site must be one of {SITES}, got {shorten(self.site)}")
        if self.scope not in SCOPES:
            raise _fail(f"scope must be one of {SCOPES}, got {shorten(self.scope)}")
        for name in ("residual_norm", "max_act", "unit_norm"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise _fail(f"{name} must be a finite number > 0, got {shorten(value)}")
        if self.direction.vector is None:
            if self.units == "raw":
                raise _fail("units 'raw' need a saved vector file (direction.vector)")
            if self.units == "resid" and self.residual_norm is None:
                raise _fail("'resid' units of an SAE feature need residual_norm")
            if self.units == "max_act" and self.max_act is None:
                raise _fail("'max_act' units of an SAE feature need max_act")
        object.__setattr__(self, "strengths", tuple(check_strength(s) for s in self.strengths))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``base`` left out; unset direction fields dropped)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "base"}
        data["direction"] = {k: v for k, v in dataclasses.asdict(self.direction).items() if v is not None}
        data["strengths"] = list(self.strengths)
        return {"version": data.pop("version"), **data}

    def resolve(self, path: str | None) -> Path | None:
        """``path`` from the spec, relative to the spec's folder when it was read from a file."""
        if path is None:
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() or self.base is None else self.base / p


def check_strength(value: object, what: str = "strength") -> float:
    """``value`` as a finite float, or an InterpSotError naming it (NaN and inf have no steering meaning)."""
    try:
        if not isinstance(value, (str, SupportsFloat)):
            raise TypeError(f"{type(value).__name__} is not a number")
        s = float(value)
    except (TypeError, ValueError) as err:
        raise InterpSotError(f"{what} {shorten(value)!r} is not a number") from err
    if not math.isfinite(s):
        raise InterpSotError(f"{what} must be a finite number, got {value!r}")
    return s


def spec_from_dict(data: Mapping[str, object], base: Path | None = None) -> SteeringSpec:
    """A spec from its JSON form; unknown or missing keys are named in the error."""
    if not isinstance(data, Mapping):
        raise _fail(f"expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(SteeringSpec)} - {"base"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _fail(f"unknown keys {unknown} (known: {sorted(known)})")
    direction = data.get("direction")
    if not isinstance(direction, Mapping):
        raise _fail("'direction' must be an object (vector file or SAE + feature)")
    dir_known = {f.name for f in dataclasses.fields(DirectionSource)}
    if set(direction) - dir_known:
        raise _fail(f"unknown direction keys {sorted(set(direction) - dir_known)} (known: {sorted(dir_known)})")
    missing = [k for k in ("model", "d_model", "layer") if k not in data]
    if missing:
        raise _fail(f"missing keys {missing}")
    # JSON values, checked by the dataclasses' __post_init__
    fields: dict[str, Any] = {k: v for k, v in data.items() if k != "direction"}
    if not isinstance(fields.get("strengths", []), list):
        raise _fail(f"strengths must be a list of numbers, got {shorten(fields['strengths'])}")
    fields["strengths"] = tuple(fields.get("strengths", ()))
    try:
        return SteeringSpec(direction=DirectionSource(**direction), base=base, **fields)
    except TypeError as err:
        raise _fail(str(err)) from err


def write_spec(path: str | Path, spec: SteeringSpec) -> Path:
    """Write ``spec`` as JSON, atomically; returns the path."""
    path = Path(path)
    atomic_write_json(path, spec.to_dict())
    return path


def read_spec(path: str | Path, feature: int | None = None) -> SteeringSpec:
    """Read a ``steering.json`` (a run directory is read as its ``steering.json``).

    A run that steered several features writes ``{"version", "specs": [...]}``: ``feature`` picks one (required
    when there are several).
    """
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / SPEC_FILE
    if not p.is_file():
        raise InterpSotError(f"steering spec {shorten(p)}: no such file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InterpSotError(f"steering spec {shorten(p)} is not valid JSON: {err}") from err
    if isinstance(data, Mapping) and "specs" in data:
        specs = [spec_from_dict(d, p.parent) for d in data["specs"]]
        features = [s.direction.feature for s in specs]
        if feature is None and len(specs) == 1:
            return specs[0]
        if feature is None or feature not in features:
            raise InterpSotError(f"steering spec {shorten(p)} holds the features {features}: pick one"
                                 + (f" ({feature} is not among them)" if feature is not None else ""))
        return specs[features.index(feature)]
    spec = spec_from_dict(data, p.parent)
    if feature is not None and spec.direction.feature != feature:
        raise InterpSotError(f"steering spec {shorten(p)} steers feature {spec.direction.feature}, not {feature}")
    return spec


def load_spec_sae(spec: SteeringSpec) -> SparseAutoencoder:
    """The spec's SAE (sae-lens, float32 on the CPU); InterpSotError when the spec names none."""
    from interp_sot.features.sae import load_sae

    d = spec.direction
    path = spec.resolve(d.sae_path)
    source = path if path is not None else d.sae_release
    if source is None:
        raise _fail("the direction names no SAE (sae_path, or sae_release + sae_id)")
    try:
        return load_sae(source, None if path is not None else d.sae_id)
    except ValueError as err:
        raise _fail(f"cannot load its SAE: {err}") from err


def spec_direction(spec: SteeringSpec, sae: SparseAutoencoder | None = None) -> torch.Tensor:
    """The vector one unit of s adds: [d_model] float32, checked against the spec's width and ``unit_norm``.

    ``sae``: an already loaded SAE for an SAE-sourced spec (else it is loaded from the spec).
    """
    d = spec.direction
    if d.vector is not None:
        direction = _load_vector(spec)
    else:
        from interp_sot.steering.strength_units import strength_scale

        units = "unit" if spec.units == "raw" else spec.units
        try:
            scale = strength_scale(sae if sae is not None else load_spec_sae(spec), int(d.feature or 0), units,
                                   residual_norm=spec.residual_norm or 1.0, max_act=spec.max_act)
        except ValueError as err:
            raise _fail(str(err)) from err
        direction = scale.direction
    if direction.ndim != 1 or direction.shape[0] != spec.d_model:
        raise _fail(f"the direction has shape {tuple(direction.shape)} but the spec says d_model {spec.d_model}")
    if not torch.isfinite(direction).all():
        raise _fail("the direction holds NaN or inf")
    norm = float(direction.norm())
    if spec.unit_norm is not None and not math.isclose(norm, spec.unit_norm, rel_tol=NORM_RTOL):
        raise _fail(f"the direction's norm {norm:.6g} differs from the recorded unit_norm {spec.unit_norm:.6g}: "
                    "another SAE, vector file or scale than the one the spec was written with")
    return direction


def _load_vector(spec: SteeringSpec) -> torch.Tensor:
    path = spec.resolve(spec.direction.vector)
    assert path is not None
    if not path.is_file():
        raise _fail(f"direction vector file {shorten(path)} not found")
    key = spec.direction.key
    if key is None:
        from interp_sot.steering.directions import load_direction

        try:
            return load_direction(path)
        except ValueError as err:
            raise _fail(str(err)) from err
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for truncated or garbled files
        raise _fail(f"{shorten(path)} is not a readable safetensors file: {err}") from err
    if key not in tensors:
        raise _fail(f"{shorten(path)} holds {sorted(tensors)}, not {key!r}")
    return tensors[key].to(torch.float32)


def check_width(spec: SteeringSpec, model: CausalLM | nn.Module) -> None:
    """Refuse a model whose residual width differs from the spec's (InterpSotError naming both)."""
    from interp_sot.layers import residual_width

    width = residual_width(model)
    if width is not None and width != spec.d_model:
        raise InterpSotError(f"the steering spec was made for d_model {spec.d_model} ({shorten(spec.model)}, layer "
                             f"{spec.layer}) but the model has d_model {width}")


def steer_from_spec(model: CausalLM | nn.Module, spec: SteeringSpec, strength: Strength, *,
                    direction: torch.Tensor | None = None) -> SteeringHandle:
    """``steer(...)`` as the spec says, at ``strength`` (a float, or [B] per batch row) in the spec's units.

    ``direction``: :func:`spec_direction` already resolved (saves re-reading the vector or SAE per call).
    """
    check_width(spec, model)
    if not isinstance(strength, torch.Tensor) or strength.ndim == 0:
        strength = check_strength(strength)
    vec = spec_direction(spec) if direction is None else direction
    try:
        return steer(model, spec.layer, vec, strength, site=spec.site, scope=spec.scope, layers_path=spec.layers_path)
    except ValueError as err:  # the spec's layer, site or direction does not fit this model
        raise InterpSotError(f"steering spec ({shorten(spec.model)}, layer {spec.layer}): {err}") from err


def _model_id(model: object) -> tuple[str, str | None]:
    """(model id, content hash) from a stage's ``inputs["model"]`` (``stages.identity.model_identity``) or a name."""
    if isinstance(model, str):
        return model, None
    if isinstance(model, Mapping):
        if "hub" in model:
            return str(model["hub"]), None
        if "name" in model:
            sha = model.get("sha256")
            return str(model["name"]), sha if isinstance(sha, str) else None
    return "unknown", None


def write_run_spec(
    out: str | Path,
    *,
    model: str | Mapping[str, object],
    layer: int,
    directions: Mapping[int | str, torch.Tensor],
    strengths: Sequence[float],
    site: str = "resid_post",
    scope: str = "all",
    layers_path: str | None = None,
    units: Mapping[str, object] | None = None,
    sae: SparseAutoencoder | torch.Tensor | None = None,
) -> list[Path]:
    """Write ``steering.json`` and its vectors (``steering.safetensors``) into a run directory; returns both paths.

    model: the model id or the stage's ``inputs["model"]`` identity. directions: feature -> [d_model] direction per
    unit of s, as the stage steered it. units: the run's ``stages.strengths.units_record`` (None: ``raw`` units).
    sae: the SAE the directions came from, if any (its Neuronpedia id is recorded when sae-lens knows it).
    site / scope: as the run's config holds them (checked by :class:`SteeringSpec`).
    """
    from interp_sot.steering.directions import decoder_matrix

    out = Path(out)
    name, sha = _model_id(model)
    keys = {str(f): f"direction_{f}" for f in directions}
    tensors = {keys[str(f)]: torch.as_tensor(d).detach().to(torch.float32).reshape(-1).cpu()
               for f, d in directions.items()}
    units = units or {}
    rows = _unit_rows(units.get("rows", []))
    npid = getattr(getattr(getattr(sae, "cfg", None), "metadata", None), "neuronpedia_id", None)
    w_dec = decoder_matrix(sae) if sae is not None else None
    specs = []
    for f, vec in zip(directions, tensors.values(), strict=True):
        feature = int(f) if isinstance(f, int) or str(f).isdigit() else None
        row = rows.get(feature if feature is not None else str(f), {})
        dec_norm = float(w_dec[feature].detach().float().norm()) if w_dec is not None and feature is not None else None
        specs.append(SteeringSpec(
            model=name, model_sha256=sha, d_model=int(vec.shape[0]), layer=int(layer), site=cast(Site, site),
            scope=cast(Scope, scope),
            layers_path=layers_path, units=str(units.get("units", "raw")), strengths=tuple(strengths),
            residual_norm=_number(units.get("residual_norm")), max_act=_number(row.get("max_act")),
            unit_norm=float(vec.norm()) if float(vec.norm()) > 0 else None,
            direction=DirectionSource(vector=VECTOR_FILE, key=keys[str(f)], feature=feature,
                                      neuronpedia_id=npid if isinstance(npid, str) else None, decoder_norm=dec_norm)))
    write_safetensors(out / VECTOR_FILE, tensors, {"format": "interp_sot steering spec vectors"})
    body: dict[str, Any] = specs[0].to_dict() if len(specs) == 1 else {
        "version": SPEC_VERSION, "specs": [s.to_dict() for s in specs]}
    atomic_write_json(out / SPEC_FILE, body)
    return [out / SPEC_FILE, out / VECTOR_FILE]


def _number(value: object) -> float | None:
    """A JSON number as a float (None when absent or not a number)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _unit_rows(rows: object) -> dict[int | str, Mapping[str, object]]:
    """The rows of a ``strength_units`` record by feature (an int id, or the id as written for others)."""
    out: dict[int | str, Mapping[str, object]] = {}
    for r in rows if isinstance(rows, list) else []:
        if isinstance(r, Mapping) and "feature" in r:
            f = str(r["feature"])
            out[int(f) if f.lstrip("-").isdigit() else f] = r
    return out
