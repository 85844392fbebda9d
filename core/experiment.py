"""The paper's Tables 2 and 3 as one runnable experiment.

Trains the five configurations with equal budgets (independent, simultaneous, interleaved and
interleaved with accumulation with the base encoder; interleaved with encoder+), evaluates each
by the paper's protocol, and sets the figures beside the published ones, with each
configuration's trainable parameters and separation time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .datasets import MUSDB_STEMS
from .evaluate import evaluate_tracks, tracks_from_musdb, write_results
from .network import count_parameters
from .separator import Separator
from .trainer import TrainConfig

CONFIGURATIONS = (
    ("independent", "independent", "encoder"),
    ("simultaneous", "simultaneous", "encoder"),
    ("interleaved", "interleaved", "encoder"),
    ("interleaved-acc", "interleaved-acc", "encoder"),
    ("encoder+", "interleaved", "encoder+"),
)
# Doire & Okubadejo, Tables 2 and 3 (MUSDB18 test set): SDR and SIR for vocals, drums, bass, other.
PAPER = {
    "independent": {"SDR": (4.15, 4.74, 3.11, 2.38), "SIR": (9.51, 7.37, 4.01, 2.18)},
    "simultaneous": {"SDR": (3.35, 4.64, 2.96, 2.49), "SIR": (7.62, 6.74, 3.65, 2.48)},
    "interleaved": {"SDR": (3.55, 4.54, 2.67, 2.28), "SIR": (8.92, 7.25, 3.80, 2.04)},
    "interleaved-acc": {"SDR": (3.33, 4.61, 2.61, 2.36), "SIR": (8.02, 7.37, 2.90, 1.89)},
    "encoder+": {"SDR": (3.61, 4.79, 2.88, 2.58), "SIR": (9.28, 7.43, 4.37, 2.25)},
}


@dataclass
class Row:
    name: str
    procedure: str
    size: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    parameters: int = 0
    separation_seconds: float = 0.0
    train_seconds: float = 0.0
    epochs: int = 0
    patches_seen: int = 0


def run_paper_experiment(
    out_dir: Path,
    musdb: Path,
    eval_musdb: Path | None = None,
    subset: str = "test",
    base: TrainConfig | None = None,
    sizes: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Train and evaluate the five configurations; ``base`` holds the shared budget and settings.

    ``sizes`` maps the paper's ``encoder``/``encoder+`` to the sizes to use (tests use tiny ones).
    """
    from .api import load_model, train

    base = base or TrainConfig()
    sizes = sizes or {"encoder": "encoder", "encoder+": "encoder+"}
    tracks = tracks_from_musdb(Path(eval_musdb or musdb), subset, MUSDB_STEMS)
    rows = []
    for name, procedure, size in CONFIGURATIONS:
        if progress:
            progress(f"training {name}")
        config = replace(base, procedure=procedure, size=sizes[size])
        result = train(out_dir / name, musdb=musdb, sources=list(MUSDB_STEMS), config=config)
        if procedure == "independent":
            models = {s: load_model(out_dir / name / s, [s]) for s in MUSDB_STEMS}
            separators = [Separator(m.model, [s], config.device) for s, m in models.items()]
            parameters = sum(count_parameters(m.model) for m in models.values())
        else:
            model = load_model(out_dir / name, list(MUSDB_STEMS))
            separators = [Separator(model.model, list(MUSDB_STEMS), config.device)]
            parameters = count_parameters(model.model)
        timing = {"seconds": 0.0}

        def estimate(track, separators=separators, timing=timing):
            start = time.perf_counter()
            out = {}
            for separator in separators:
                out |= separator.separate(track.mixture)
            timing["seconds"] += time.perf_counter() - start
            return out

        if progress:
            progress(f"evaluating {name}")
        results = evaluate_tracks(tracks, estimate)
        write_results(results, out_dir / name / "evaluation", f"{name} ({procedure}, {config.size})")
        rows.append(
            Row(name, procedure, config.size, results.summary(), parameters, timing["seconds"], result.seconds,
                result.epochs, result.patches_seen)
        )  # fmt: skip
    (out_dir / "experiment.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return rows


def table_rows(rows: list[Row], metric: str) -> list[list[str]]:
    """For one metric: ours and the paper's value per source, as printable cells."""
    out = []
    for row in rows:
        ours = [row.scores[s][metric] for s in MUSDB_STEMS]
        paper = PAPER[row.name][metric]
        out.append(
            [row.name, *(f"{o:.2f} ({p:.2f})" if np.isfinite(o) else f"- ({p:.2f})" for o, p in zip(ours, paper))]
        )
    return out
