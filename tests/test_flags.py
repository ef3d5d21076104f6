"""Flags derived from config dataclasses (:mod:`interp_sot.flags`): each setting declared once, as a field."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest

from interp_sot.errors import FlagError
from interp_sot.flags import UNSET, add_flags, field_docs, from_flags, parse_list


@dataclass(frozen=True)
class Toy:
    """A config with every kind of field a flag can carry."""

    layer: int
    """Decoder layer."""
    rate: float = 0.5
    """A rate, in [0, 1]."""
    name: str | None = None
    """A name (None: unnamed)."""
    mode: Literal["a", "b"] = "a"
    """Which mode."""
    loud: bool = False
    """Log more."""
    ratios: tuple[float, ...] = (0.0, 0.1)
    """Candidates (must hold 0)."""

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise ValueError(f"rate must lie in [0, 1], got {self.rate}")


def parse(argv: list[str], **kwargs: object) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_flags(p, Toy, **kwargs)  # type: ignore[arg-type]
    return p.parse_args(argv)


def test_every_field_becomes_its_flag_and_back() -> None:
    args = parse(["--layer", "3", "--rate", "0.25", "--name", "x", "--mode", "b", "--loud", "--ratios=-0.2,0,0.2"])
    assert from_flags(Toy, args) == Toy(3, 0.25, "x", "b", True, (-0.2, 0.0, 0.2))
    assert from_flags(Toy, parse(["--layer", "1"])) == Toy(1)  # the dataclass's defaults are the flags' defaults
    assert from_flags(Toy, parse(["--layer", "1", "--no-loud"])).loud is False


def test_help_is_the_field_docstring_with_the_default() -> None:
    p = argparse.ArgumentParser()
    add_flags(p, Toy)
    text = p.format_help()
    assert "A rate, in [0, 1]. (default: 0.5)" in " ".join(text.split())
    assert "{a,b}" in text and "Candidates (must hold 0). (default: 0.0,0.1)" in " ".join(text.split())
    assert field_docs(Toy)["name"] == "A name (None: unnamed)."


def test_required_field_and_overrides() -> None:
    with pytest.raises(SystemExit):  # layer has no default: the flag is required
        parse([])
    args = parse([], defaults={"layer": 7, "rate": 0.9})
    assert from_flags(Toy, args) == Toy(7, 0.9)
    args = parse(["--layer", "1"], exclude=("ratios",), rename={"rate": "toy_rate"}, aliases={"mode": ("--m",)})
    assert not hasattr(args, "ratios") and args.toy_rate == 0.5
    args = parse(["--layer", "1", "--toy-rate", "0.1", "--m", "b"], rename={"rate": "toy_rate"})
    assert from_flags(Toy, args, rename={"rate": "toy_rate"}) == Toy(1, 0.1, mode="b")
    assert parse(["--layer", "2"], defaults={"layer": UNSET}).layer == 2


def test_bad_values_are_flag_errors_naming_the_flag() -> None:
    with pytest.raises(SystemExit):
        parse(["--layer", "1", "--mode", "c"])  # not a choice
    with pytest.raises(FlagError, match="rate must lie in"):  # the config's own validation
        from_flags(Toy, parse(["--layer", "1", "--rate", "2"]))
    with pytest.raises(FlagError, match="--ratios: values are listed twice"):
        parse_list("0,0.1,0.1", float, "--ratios")
    with pytest.raises(FlagError, match="--ratios: values must be finite"):
        parse_list("0,nan", float, "--ratios")
    with pytest.raises(FlagError, match="--ratios: give at least one value"):
        parse_list(",", float, "--ratios")
    assert parse_list("", str, "--stop") == ()  # text lists may be empty


def test_a_field_no_flag_can_carry_must_be_excluded() -> None:
    @dataclass
    class Nested:
        inner: Toy = dataclasses.field(default_factory=lambda: Toy(1))

    with pytest.raises(TypeError, match=r"Nested\.inner: no flag"):
        add_flags(argparse.ArgumentParser(), Nested)
    assert add_flags(argparse.ArgumentParser(), Nested, exclude=("inner",)) == []


@pytest.mark.parametrize("command, config, skip", [
    ("demo", "interp_sot.demo.config:DemoConfig", ()),
    ("dose", "interp_sot.experiments.dose_config:DoseConfig", ("layer", "site", "scope", "add_special_tokens",
                                                               "coherence")),
    ("steer", "interp_sot.experiments.settings:GenerationSettings", ()),
    ("steer", "interp_sot.stages.sources:ProblemSource", ()),
    ("controls", "interp_sot.stages.controls_config:ControlsConfig", ("matched_norms",)),
    ("steer", "interp_sot.stages.run_steer:SteerChoice", ()),
    ("steer", "interp_sot.stages.run_options:UnitsOptions", ()),
    ("steer", "interp_sot.stages.run_options:CodingOptions", ()),
    ("steer", "interp_sot.stages.run_options:FinishOptions", ()),
    ("controls", "interp_sot.stages.run_controls:ControlsChoice", ()),
    ("controls", "interp_sot.stages.run_options:CodingOptions", ()),
    ("dose", "interp_sot.stages.run_options:UnitsOptions", ()),
    ("stats", "interp_sot.stages.stats_run:StatsRequest", ()),
    ("screen", "interp_sot.stages.screen_config:ScreenInputs", ()),
    ("screen", "interp_sot.stages.screen_config:JudgeOptions", ()),
    ("browse", "interp_sot.browser.run:BrowseRequest", ()),
])
def test_commands_carry_every_config_field(command: str, config: str, skip: tuple[str, ...]) -> None:
    """A field added to a stage's config reaches its command's flags with no hand mapping to update."""
    import importlib

    from interp_sot.cli import build_parser

    module, name = config.split(":")
    cls = getattr(importlib.import_module(module), name)
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    dests = {a.dest for a in sub._actions}
    renamed = {"seed": "control_seed"} if name == "ControlsConfig" else {}
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in skip and renamed.get(f.name, f.name) not in dests]
    assert not missing, f"{command} lacks flags for {name} fields {missing}"


def test_flag_errors_are_one_line_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad derived flag is refused by the parser, in the one-line form of every other error."""
    from interp_sot.cli import main

    for argv, needle in ((["dose", "--layer", "1", "--feature", "1", "--ratios=0,0.1,0.1", "--out", "x"],
                          "argument --ratios: values are listed twice"),
                         (["demo", "--dose-ratios=0,nan"], "argument --dose-ratios: values must be finite"),
                         (["controls", "--layer", "1", "--mode", "sideways", "--out", "x"], "argument --mode")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and needle in err
        assert err.count("\n") == 1 and err.startswith(f"interp-sot {argv[0]}: error: ")


def test_repeated_flags_add_their_values() -> None:
    """``repeat=``: a tuple field's flag given several times keeps every value (others keep the last), and the
    config gets a tuple."""
    @dataclasses.dataclass(frozen=True)
    class Files:
        prompt_file: tuple[str, ...] = ()
        """KIND=PATH."""
        strengths: tuple[float, ...] = (1.0,)
        """Numbers."""

    parser = argparse.ArgumentParser()
    add_flags(parser, Files, repeat=("prompt_file",), metavar={"prompt_file": "KIND=PATH"})
    args = parser.parse_args(["--prompt-file", "a=x", "--prompt-file", "b=y,c=z", "--strengths", "1", "--strengths",
                              "2,3"])
    assert from_flags(Files, args) == Files(("a=x", "b=y", "c=z"), (2.0, 3.0))
    assert from_flags(Files, parser.parse_args([])) == Files()
    assert "--prompt-file KIND=PATH" in parser.format_help()
