"""The paper's Tables 2 and 3 as one runnable experiment.

Trains the five configurations with equal budgets (independent, simultaneous, interleaved and
interleaved with accumulation with the base encoder; interleaved with encoder+), evaluates each
by the paper's protocol, and sets the figures beside the published ones, with each
configuration's trainable parameters and separation time.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .datasets import MUSDB_STEMS
from .errors import SeptoolError, argument
from .evaluation import evaluate_tracks, evaluation_tracks, write_results
from .formats import check_subset
from .network import count_parameters
from .plugin_manager import registry
from .separator import Separator
from .trainer import TrainConfig
from .workers import worker_pool

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


STAGES = ("all", "train", "evaluate")
TRAINING_FILE = "training.json"


def _train_configuration(job: tuple[str, str, str | None, Path, Path, TrainConfig, int | None]) -> dict:
    """Train one configuration into ``out_dir/name`` (also the body of a parallel worker)."""
    from .api import train

    name, procedure, size, out_dir, musdb, config, threads = job
    if threads:
        torch.set_num_threads(threads)
    config = replace(config, procedure=procedure, size=size)
    result = train(out_dir / name, musdb=musdb, sources=list(MUSDB_STEMS), config=config)
    record = {
        "backbone": config.backbone, "size": size, "device": config.device, "batch_size": config.batch_size,
        "seconds": result.seconds, "epochs": result.epochs, "best_epoch": result.best_epoch,
        "patches_seen": result.patches_seen, "stopped": result.stopped,
    }  # fmt: skip
    (out_dir / name / TRAINING_FILE).write_text(json.dumps(record))
    return record


def train_configurations(
    out_dir: Path,
    musdb: Path,
    base: TrainConfig,
    sizes: dict[str, str | None],
    parallel: bool = False,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Train the five configurations, one after another or all at once (one process each).

    ``sizes`` maps the paper's ``encoder`` and ``encoder+`` to the backbone's sizes; a
    configuration whose size maps to None is left out. In parallel every configuration gets the
    same wall-clock budget on a shared device: worth it where one configuration alone cannot keep
    a large GPU busy.
    """
    jobs = [
        (name, procedure, sizes[size], out_dir, musdb, base)
        for name, procedure, size in CONFIGURATIONS
        if sizes.get(size) is not None
    ]
    if not parallel:
        for job in jobs:
            if progress:
                progress(f"training {job[0]}")
            _train_configuration((*job, None))
        return
    threads = max(1, (os.cpu_count() or 1) // len(jobs))
    if progress:
        progress(f"training {', '.join(j[0] for j in jobs)} in parallel")
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    with worker_pool(len(jobs), mp_context=context) as pool:
        pool.map(_train_configuration, [(*job, threads) for job in jobs])


def evaluate_configurations(
    out_dir: Path,
    eval_musdb: Path,
    subset: str = "test",
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> list[Row]:
    """Score the five trained configurations in ``out_dir`` by the paper's protocol (``jobs``
    scoring processes; separation time is measured in this process alone)."""
    from .api import load_model

    tracks = evaluation_tracks(Path(eval_musdb), MUSDB_STEMS, subset)
    rows = []
    for name, procedure, size in CONFIGURATIONS:
        folder = out_dir / name
        if size == "encoder+" and not _has_wider_size(out_dir):
            continue
        if not (folder / TRAINING_FILE).exists():
            raise SeptoolError(f"{folder}: no trained {name} configuration (train it: {argument('stage', 'train')})")
        training = json.loads((folder / TRAINING_FILE).read_text())
        if procedure == "independent":
            models = {s: load_model(folder / s, sources=[s]) for s in MUSDB_STEMS}
            separators = [Separator(m.model, [s], device) for s, m in models.items()]
            parameters = sum(count_parameters(m.model) for m in models.values())
        else:
            model = load_model(folder, sources=list(MUSDB_STEMS))
            separators = [Separator(model.model, list(MUSDB_STEMS), device)]
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
        results = evaluate_tracks(tracks, estimate, jobs)
        write_results(
            results,
            folder / "evaluation",
            f"{name} ({procedure}, {training.get('backbone', 'unet')} {training['size']})",
        )
        rows.append(
            Row(name, procedure, training["size"], results.summary(), parameters, timing["seconds"],
                training["seconds"], training["epochs"], training["patches_seen"])
        )  # fmt: skip
    (out_dir / "experiment.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return rows


def _has_wider_size(out_dir: Path) -> bool:
    """Whether the backbone the experiment trained (read from its interleaved row) has an encoder+ row."""
    try:
        backbone = json.loads((out_dir / "interleaved" / TRAINING_FILE).read_text()).get("backbone", "unet")
        return registry().backbone(backbone).wider_size is not None
    except (OSError, ValueError, SeptoolError):
        return True  # the missing row is then reported as such


def run_paper_experiment(
    out_dir: Path,
    *,
    musdb: Path | None,
    eval_musdb: Path | None = None,
    subset: str = "test",
    base: TrainConfig | None = None,
    sizes: dict[str, str | None] | None = None,
    progress: Callable[[str], None] | None = None,
    parallel: bool = False,
    stage: str = "all",
    jobs: int = 1,
) -> list[Row]:
    """Train and evaluate the five configurations; ``base`` holds the shared budget and settings.

    ``sizes`` maps the paper's ``encoder``/``encoder+`` to the sizes to use (tests use tiny ones);
    by default the backbone's (``base.backbone``) default and wider sizes.
    ``stage`` ``train`` stops after training (e.g. on a GPU machine), ``evaluate`` scores models
    trained before; both return the rows that exist (none after ``train``).
    """
    if stage not in STAGES:
        raise SeptoolError(f"unknown stage {stage!r}; choose {', '.join(STAGES)}")
    if jobs < 1:  # refused now, not after hours of training
        raise SeptoolError(f"jobs must be at least 1, got {jobs}")
    check_subset(subset, registry().formats)
    base = base or TrainConfig()
    if stage != "evaluate":
        if musdb is None:
            raise SeptoolError(f"training needs a MUSDB18-shaped folder ({argument('musdb')})")
        spec = registry().backbone(base.backbone)
        sizes = sizes or {"encoder": spec.default_size, "encoder+": spec.wider_size}
        train_configurations(out_dir, Path(musdb), base, sizes, parallel, progress)
        if stage == "train":
            return []
    if eval_musdb is None and musdb is None:
        raise SeptoolError(
            f"evaluation needs a MUSDB18-shaped folder ({argument('eval_musdb')} or {argument('musdb')})"
        )
    root = eval_musdb if eval_musdb is not None else musdb
    assert root is not None
    return evaluate_configurations(out_dir, Path(root), subset, base.device, progress, jobs)


def paper_table_rows(rows: list[Row], *, metric: str) -> list[list[str]]:
    """For one metric: ours and the paper's value per source, as printable cells."""
    out = []
    for row in rows:
        ours = [row.scores[s][metric] for s in MUSDB_STEMS]
        paper = PAPER[row.name][metric]
        out.append(
            [row.name, *(f"{o:.2f} ({p:.2f})" if np.isfinite(o) else f"- ({p:.2f})" for o, p in zip(ours, paper))]
        )
    return out
