"""The strength-unit registry (:mod:`interp_sot.steering.units`): a toy unit, registered once, reaches the
command line, the directions a run steers with and the units record every run keeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from interp_sot.cli import main
from interp_sot.steering.strength_units import strength_scale
from interp_sot.steering.units import STRENGTH_UNITS, StrengthUnit, register_strength_unit, unregister_strength_unit

pytestmark = pytest.mark.usefixtures("one_thread")
FACTOR = 3.0


@pytest.fixture
def toy_unit() -> Iterator[StrengthUnit]:
    """'triple': one unit of s adds three times the unit-norm decoder row."""
    unit = register_strength_unit(StrengthUnit("triple", "three unit-norm rows", "unit", lambda ctx: FACTOR))
    yield unit
    unregister_strength_unit("triple")


def test_registry_names_and_refuses_duplicates(toy_unit: StrengthUnit) -> None:
    assert list(STRENGTH_UNITS)[:4] == ["unit", "sae", "max_act", "resid"] and "triple" in STRENGTH_UNITS
    with pytest.raises(ValueError, match="already registered"):
        register_strength_unit(toy_unit)
    w = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    scale = strength_scale(w, 0, "triple", residual_norm=10.0)
    torch.testing.assert_close(scale.direction, torch.tensor([0.6, 0.8]) * FACTOR)
    assert scale.added_norm(2.0) == pytest.approx(6.0) and scale.ratio(2.0) == pytest.approx(0.6)
    bad = register_strength_unit(StrengthUnit("broken", "nothing", "unit", lambda ctx: 0.0))
    try:
        with pytest.raises(ValueError, match=r"factor 0\.0"):
            strength_scale(w, 0, "broken", residual_norm=1.0)
    finally:
        unregister_strength_unit(bad.name)


@pytest.fixture
def run_inputs(tiny_llama: Any, tmp_path: Path) -> tuple[Path, Path]:
    from builders import char_tokenizer
    from safetensors.torch import save_file

    model = tmp_path / "tiny"
    tiny_llama.save_pretrained(model)
    char_tokenizer().save_pretrained(model)
    config = json.loads((model / "config.json").read_text())
    config["max_position_embeddings"] = 1024
    (model / "config.json").write_text(json.dumps(config))
    g = torch.Generator().manual_seed(0)
    decoder = tmp_path / "w_dec.safetensors"
    save_file({"W_dec": torch.randn(6, 32, generator=g)}, decoder)
    return model, decoder


def test_toy_unit_reaches_the_cli_and_the_run_record(toy_unit: StrengthUnit, run_inputs: tuple[Path, Path],
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, decoder = run_inputs
    with pytest.raises(SystemExit):
        main(["steer", "--help"])
    assert "triple" in capsys.readouterr().out  # --units choices and help come from the registry
    out = tmp_path / "run"
    assert main(["steer", "--model", str(model), "--decoder", str(decoder), "--features", "2", "--units", "triple",
                 "--strengths=0,2", "--layer", "1", "--n-problems", "2", "--max-new-tokens", "3", "--greedy",
                 "--batch-size", "4", "--no-measure", "--n-boot", "20", "--out", str(out)]) == 0
    record = json.loads((out / "strength_units.json").read_text())
    assert record["units"] == "triple"
    by_s = {r["strength"]: r for r in record["rows"]}
    assert by_s[2.0]["added_norm"] == pytest.approx(2 * FACTOR)
    assert by_s[2.0]["ratio_to_residual"] == pytest.approx(2 * FACTOR / record["residual_norm"])
    w = load_file(decoder)["W_dec"][2]
    steered = load_file(out / "direction.safetensors")
    direction = next(iter(steered.values()))
    torch.testing.assert_close(direction, w / w.norm() * FACTOR)  # what the hook adds per unit of s
    spec = json.loads((out / "steering.json").read_text())
    assert spec["units"] == "triple" and spec["unit_norm"] == pytest.approx(FACTOR)  # the portable spec too
    table = pd.read_csv(out / "analysis" / "strength_units.csv")  # the analysis tables
    assert set(table["units"]) == {"triple"}
    assert table.set_index("strength").loc[2.0, "added_norm"] == pytest.approx(2 * FACTOR)
    summary = (out / "report" / "summary.md").read_text()  # and the report
    assert "## Strength units: triple" in summary and "| 2 | 2 | triple | 6 |" in summary
