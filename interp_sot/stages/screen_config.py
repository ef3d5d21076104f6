"""Settings of the screen stage (:mod:`interp_sot.stages.screen`): what is screened and how (``ScreenConfig``), the
folders and files it reads and writes (``ScreenInputs``) and how its LLM judge is called (``JudgeOptions``).

Pure Python (no torch, no pandas): ``interp-sot screen`` derives its flags from these fields
(:mod:`interp_sot.flags`), and ``interp-sot --help`` must not import the stage itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from interp_sot.errors import FlagError
from interp_sot.screening.settings import FilterConfig, RatioConfig

ValidateOn = Literal["labels"]
"""What a judge can be validated against: the corpus's per-document labels (``label_field``)."""


@dataclass(frozen=True)
class ScreenConfig:
    """How every feature's conversation ratio is measured and filtered."""

    judge: str = "labels"
    """Who judges each context (a spec of :func:`interp_sot.judging.spec.make_judge`); ``labels`` reads the
    corpus's document labels and calls no model."""
    label_field: str = "conversational"
    """Per-document boolean metadata read by the ``labels`` judge."""
    source_field: str = "source"
    """Per-document metadata naming the corpus source; when present the table gets ``n_sources`` for the pick."""
    ratio: RatioConfig = field(default_factory=RatioConfig)
    """Top contexts per feature, judge batching, thresholds, retries."""
    filter: FilterConfig = field(default_factory=FilterConfig)
    """The paper's two criteria and the definition of "activation in the first four tokens"."""
    features: tuple[int, ...] | None = None
    """Judge only these features (others get NaN ratios); None = all."""
    window: tuple[int, int] = (32, 8)
    """Tokens shown to a judge before and after the marked token."""
    categories: bool = False
    """Also classify each feature label as personality / expertise / other (needs a judge and labels)."""

    def __post_init__(self) -> None:
        if self.features is not None:
            object.__setattr__(self, "features", tuple(int(f) for f in self.features))
            if any(f < 0 for f in self.features):
                raise ValueError("ScreenConfig.features: feature indices must be >= 0")
        if len(self.window) != 2 or min(self.window) < 0:
            raise ValueError(f"ScreenConfig.window must be two counts >= 0, got {self.window}")
        object.__setattr__(self, "window", tuple(int(w) for w in self.window))


@dataclass(frozen=True, kw_only=True)
class ScreenInputs:
    """The folders and files a screen reads, and the folder it writes."""

    stats: str
    """Folder written by `interp-sot stats` (FeatureStats + contexts)."""
    contexts: str | None = None
    """ContextStore folder if not inside --stats."""
    out: str
    """Output folder (also holds the resumable judge scores)."""
    tokenizer: str | None = None
    """Tokenizer (folder or hub id) to decode contexts; default: the one the stats name."""
    labels: str | None = None
    """Neuronpedia explanations export (folder or batch file)."""
    prefer_explainer: tuple[str, ...] = ()
    """Explanation models to prefer, first first, when a feature has several (repeatable, or comma-separated)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefer_explainer", tuple(self.prefer_explainer))


@dataclass(frozen=True)
class JudgeOptions:
    """How the screen's LLM judge is called: backend options, the provider batch route, validation, prompt files."""

    concurrency: int | None = None
    """Requests in flight (openai judge); None: the client picks (2 on loopback, 8 elsewhere)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key."""
    timeout: float = 120.0
    """Longest silence in seconds (connect, first token, between streamed tokens) before a call is retried (openai
    judge)."""
    judge_batch_out: str | None = None
    """Write every judge request the reply cache cannot answer to this file (OpenAI Batch API JSONL) instead of
    sending it; no live call is made."""
    judge_batch_in: str | None = None
    """Read a provider's batch results file into the reply cache first; no live call is made."""
    validate_on: ValidateOn | None = None
    """Score the judge against the documents' --label-field labels (accuracy, Cohen's kappa)."""
    prompt_file: tuple[str, ...] = ()
    """KIND=PATH replaces a judge prompt by a text file (repeatable, or comma-separated); KIND: conversational_score,
    feature_category (see the README's prompt table)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_file", tuple(self.prompt_file))

    def backend_options(self, spec: str) -> dict[str, object]:
        """The keywords of ``make_judge(spec, ...)``: the openai client's options; none for other backends."""
        if not spec.startswith("openai:"):
            return {}
        options: dict[str, object] = {"api_key_env": self.api_key_env, "timeout_s": self.timeout}
        if self.concurrency is not None:  # else the client picks (2 on loopback: a local server answers one call)
            options["max_concurrency"] = self.concurrency
        return options


def parse_feature_list(text: str | None) -> list[int] | None:
    """``'0-3,7'`` (as ``--features`` writes them) -> ``[0, 1, 2, 3, 7]``; None stays None."""
    if text is None:
        return None
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise FlagError(f"--features: cannot read {part!r}; write e.g. '0-99,30939'") from None
    return out
