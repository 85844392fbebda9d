"""septool's public Python API: load a model, separate files."""

from __future__ import annotations

import contextlib
import os
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import cast

import numpy as np

from . import audio as audio_io
from .backbones import canonical
from .datasets import MUSDB_STEMS, AudioCache, from_folders, from_musdb
from .errors import SeptoolError, argument
from .evaluation import Results, evaluate_tracks, evaluation_tracks, oracle, write_results
from .files import DEFAULT_FILENAME, check_writable, signals_deferred
from .formats import check_subset
from .listening import PAGE as REPORT_PAGE
from .listening import compare as compare_reports
from .listening import writing_report
from .network import SharedModel
from .plugin_manager import Registry, registry
from .plugin_manager import reset as reset_plugins
from .postfilter import NO_POSTFILTER, PostFilter
from .separator import Separator
from .sources import SourceSpec
from .store import (
    ENCODER_FILE,
    StoredEncoder,
    decoder_file,
    load_decoder,
    load_encoder,
    packaged_encoder,
)
from .trainer import TrainConfig, Trainer, TrainResult
from .transfer import AddedDecoder, check_new_source, remove_local_plugin, write_package
from .transfer import add_decoder as add_to_model

FILENAME_FIELDS = {"track", "source", "ext"}


@dataclass
class LoadedModel:
    """A shared model ready to separate, with where its parts came from."""

    model: SharedModel
    encoder: StoredEncoder
    sources: list[str]
    files: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def load_model(
    model_dir: str | os.PathLike | None = None,
    *,
    sources: Sequence[str] | None = None,
    reg: Registry | None = None,
) -> LoadedModel:
    """Load the encoder and decoders for ``sources`` (default: every registered source with weights).

    Decoders come from ``model_dir`` when it has them, else from the plugin that registered the
    source. A source asked for by name must load, and so must every decoder file in
    ``model_dir``; other sources without usable weights (a plugin that ships none, or weights
    for another encoder) are skipped and listed in ``skipped`` with the reason.
    """
    reg = reg or registry()
    encoder_path: Path | Traversable
    if model_dir is not None:
        model_dir = Path(model_dir)
        encoder_path = model_dir / ENCODER_FILE
        if not model_dir.is_dir():
            raise SeptoolError(f"{model_dir}: no such model directory")
        if not encoder_path.is_file():
            raise SeptoolError(f"{model_dir}: not a septool model directory (no {ENCODER_FILE})")
    else:
        encoder_path = packaged_encoder()
        if not encoder_path.is_file():
            raise SeptoolError(
                f"no pretrained model is installed with this septool; pass {argument('model')} "
                "(a model directory written by `septool train`)"
            )
    encoder = load_encoder(encoder_path, reg)
    explicit = sources is not None
    # MUSDB's usual order (vocals, drums, bass, other) first, then other sources as registered
    ordered = [s for s in MUSDB_STEMS if s in reg.sources] + [s for s in reg.sources if s not in MUSDB_STEMS]
    wanted = list(dict.fromkeys(sources)) if sources is not None else ordered
    decoders, files, skipped = {}, {"encoder": str(encoder_path)}, {}
    for name in wanted:
        spec = reg.get(name)
        candidates: list[Path | Traversable] = [model_dir / decoder_file(name)] if model_dir is not None else []
        candidates += [spec.weights] if spec.weights is not None else []
        path = next((c for c in candidates if c.is_file()), None)
        try:
            if path is None:
                where = ", ".join(str(c) for c in candidates) or "nowhere: its plugin ships no weights"
                raise SeptoolError(f"no trained decoder for source {name!r} (looked in {where})")
            decoders[name] = load_decoder(path, encoder, name, reg).decoder
            files[name] = str(path)
        except SeptoolError as err:
            if explicit or (model_dir is not None and path == model_dir / decoder_file(name)):
                raise
            skipped[name] = str(err)
    if not decoders:
        reasons = "; ".join(skipped.values()) or "no sources are registered"
        raise SeptoolError(f"no decoder could be loaded: {reasons}")
    model = SharedModel(encoder.encoder, decoders, encoder.stft).eval()
    return LoadedModel(model, encoder, list(decoders), files, skipped)


@dataclass
class SeparatedTrack:
    input: Path
    outputs: dict[str, Path]
    clipped: dict[str, int]
    peaks: dict[str, float]
    seconds: float


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; directories contribute the audio files directly inside them."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in audio_io.AUDIO_SUFFIXES)
            if not found:
                raise SeptoolError(f"{path}: directory contains no audio files")
            files.extend(found)
        else:
            files.append(path)
    if not files:
        raise SeptoolError("no input files given")
    return files


def _check_template(template: str) -> None:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as err:
        raise SeptoolError(f"bad {argument('filename')} template {template!r}: {err}") from None
    unknown = names - FILENAME_FIELDS
    if unknown:
        raise SeptoolError(
            f"bad {argument('filename')} template {template!r}: unknown field(s) {sorted(unknown)}; "
            "use {track}, {source}, {ext}"
        )
    if "source" not in names:
        raise SeptoolError(f"bad {argument('filename')} template {template!r}: it must contain {{source}}")


def separate(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    out_dir: str | os.PathLike = "separated",
    sources: Sequence[str] | None = None,
    filename: str = DEFAULT_FILENAME,
    fmt: str = "wav",
    bits: str = "16",
    device: str = "cpu",
    model: str | os.PathLike | LoadedModel | None = None,
    progress: Callable[[Path, int, int], None] | None = None,
    batch_size: int | None = None,
    overlap: float = 0.25,
    precision: str = "auto",
    postfilter: str = "none",
    wiener_iterations: int = 1,
    runtime: str = "torch",
    report: bool = False,
) -> list[SeparatedTrack]:
    """Separate audio files into stems written under ``out_dir``.

    ``report``: also write a listening page, ``out_dir/REPORT_FOLDER/index.html``: an excerpt of
    each input and of its stems, with spectrograms (``listening.py``).

    ``runtime``: ``torch``, or ``onnx`` (ONNX Runtime, the ``onnx`` extra) on the model exported
    once into the cache (``export``); the same streaming, overlap-add and post-filters either way.

    ``postfilter`` (``none`` or a registered post-filter: ``softmask``, ``wiener``...): share the
    mixture among the stem set of the chosen sources (``postfilter.py``); the set's other
    decoders run too. ``wiener_iterations``: the iterations of an iterative filter.
    Every input is checked before anything is separated. Each stem is written to a temporary
    file and renamed into place when complete, so a failure leaves no partial output.
    ``progress(track, done_samples, total_samples)`` is called after every batch of patches; with
    the Wiener filter, which reads each input twice, the total counts both passes.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    audio_io.check_output_format(fmt, bits)
    _check_template(filename)
    infos = [audio_io.probe(p) for p in expand_inputs(inputs)]
    loaded, chosen, post = _prepare(model, sources, postfilter, wiener_iterations)
    out_dir = Path(out_dir)
    targets = output_paths([i.path for i in infos], out_dir, filename, fmt, chosen)
    if report:
        _check_report_folder(out_dir, targets)
    check_writable(out_dir)
    network = _runtime_model(loaded, runtime, device)
    separator = Separator(network, chosen, device, batch_size, overlap, precision, post)
    tracks = [
        _separate_file(separator, info, paths, fmt, bits, progress) for info, paths in zip(infos, targets, strict=True)
    ]
    if report:
        with writing_report(out_dir / REPORT_FOLDER, "separation") as writer:
            for track in tracks:
                writer.add_separated(track.input, track.outputs)
            writer.finish(_model_title(loaded), _model_fields(loaded))
    return tracks


REPORT_FOLDER = "report"


def _check_report_folder(out_dir: Path, targets: Sequence[dict[str, Path]]) -> None:
    folder = (out_dir / REPORT_FOLDER).resolve()
    for paths in targets:
        for path in paths.values():
            if path.resolve().is_relative_to(folder):
                raise SeptoolError(
                    f"{path}: a stem inside the report folder {out_dir / REPORT_FOLDER}; choose another filename"
                )


def _model_title(loaded: LoadedModel) -> str:
    encoder = Path(loaded.files.get("encoder", ""))
    return "shipped model" if encoder == Path(str(packaged_encoder())) else f"model {encoder.parent.name}"


def _model_fields(loaded: LoadedModel) -> dict:
    """What a report states of the model: its files, fingerprint, backbone, config and provenance."""
    return {
        "encoder": loaded.files.get("encoder"), "fingerprint": loaded.encoder.fingerprint,
        "backbone": loaded.encoder.backbone, "config": loaded.encoder.encoder.config,
        "provenance": loaded.encoder.metadata.get("provenance", {}),
        "decoders": {s: f for s, f in loaded.files.items() if s != "encoder"},
    }  # fmt: skip


RUNTIMES = ("torch", "onnx")


def _runtime_model(loaded: LoadedModel, runtime: str, device: str):
    """What the separator runs: the torch model, or its ONNX export run by ONNX Runtime."""
    if runtime not in RUNTIMES:
        raise SeptoolError(f"unknown runtime {runtime!r}; choose {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return loaded.model
    from .onnx_export import OnnxModel, onnxruntime_module

    onnxruntime_module()  # refused before any export when the package is missing
    if device != "cpu":
        raise SeptoolError(f"the onnx runtime runs on the CPU here; got device {device!r}")
    return OnnxModel(cached_export(loaded))


def cached_export(loaded: LoadedModel) -> Path:
    """The ONNX export of ``loaded`` in the cache, written on first use (keyed by the model files' bytes)."""
    import hashlib

    from .datasets import cache_folder
    from .onnx_export import export_onnx

    digest = hashlib.sha256()
    for name in ["encoder", *loaded.sources]:
        digest.update(name.encode() + b"\0" + Path(loaded.files[name]).read_bytes())
    path = cache_folder().parent / "onnx" / f"{digest.hexdigest()[:20]}.onnx"
    return path if path.is_file() else export_onnx(loaded, path, dynamic_batch=True)


def export(
    out_path: str | os.PathLike,
    *,
    model: str | os.PathLike | LoadedModel | None = None,
    sources: Sequence[str] | None = None,
    fmt: str = "onnx",
    dynamic_batch: bool = False,
) -> Path:
    """Write the model (default: the shipped one) with the chosen decoders as one graph.

    ``fmt`` ``onnx``: the encoder and decoders over normalized magnitude patches, normalization and
    STFT settings in its metadata (``core/onnx_export.py`` has the contract). Every decoder asked for
    must load; the backbone must be registered and its network exportable."""
    from .onnx_export import EXPORT_FORMATS, export_onnx

    if fmt not in EXPORT_FORMATS:
        raise SeptoolError(f"unknown export format {fmt!r}; choose {', '.join(EXPORT_FORMATS)}")
    check_writable(Path(out_path).parent)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, sources=sources)
    return export_onnx(loaded, out_path, dynamic_batch=dynamic_batch)


def output_paths(
    inputs: Sequence[Path], out_dir: Path, filename: str, fmt: str, sources: Sequence[str]
) -> list[dict[str, Path]]:
    """Each input's stem paths from the filename template, checked before anything is written.

    Every path must lie inside ``out_dir`` once resolved (no absolute template, no ``..`` in the
    template or in a track name such as that of ``...wav``), no two stems may share a path, and
    no stem may replace an input.
    """
    root = out_dir.resolve()
    replaced = {p.resolve(): p for p in inputs}
    owners: dict[Path, Path] = {}
    plans = []
    for source_file in inputs:
        paths = {}
        for source in sources:
            relative = filename.format(track=source_file.stem, source=source, ext=fmt)
            resolved = (out_dir / relative).resolve()
            if not resolved.is_relative_to(root) or resolved == root:
                raise SeptoolError(
                    f"{source_file}: its {source} stem {relative!r} (filename template {filename!r}) would lie "
                    f"outside the output folder {out_dir}"
                )
            if resolved in replaced:
                raise SeptoolError(f"{source_file}: its {source} stem would replace the input {replaced[resolved]}")
            if resolved in owners:
                other = owners[resolved]
                raise SeptoolError(
                    f"{other} and {source_file} would write the same output {out_dir / relative}"
                    + (" (put {track} in the filename template)" if other != source_file else "")
                )
            owners[resolved] = source_file
            paths[source] = out_dir / relative
        plans.append(paths)
    return plans


def _prepare(
    model: str | os.PathLike | LoadedModel | None, sources: Sequence[str] | None, postfilter: str, iterations: int
) -> tuple[LoadedModel, list[str], PostFilter | None]:
    """The model, the sources to write and the post-filter over their stem sets, all checked."""
    if iterations < 1:  # refused with no post-filter too: the value is wrong whatever the filter
        raise SeptoolError(f"{argument('wiener_iterations')} must be at least 1, got {iterations}")
    reg = registry()
    spec = reg.postfilter(postfilter) if postfilter != NO_POSTFILTER else None
    chosen = list(dict.fromkeys(sources)) if sources is not None else None

    def sets_of(names: Sequence[str]) -> dict[str, list[str]]:
        return {n: m for n, m in reg.stem_sets().items() if set(m) & set(names)} if spec else {}

    if isinstance(model, LoadedModel):
        loaded = model
    elif chosen is None:
        loaded = load_model(model, sources=None, reg=reg)
    else:
        partners = [s for members in sets_of(chosen).values() for s in members if s not in chosen]
        try:
            loaded = load_model(model, sources=chosen + partners, reg=reg)
        except SeptoolError as err:
            if not partners:
                raise
            needed = f"{argument('postfilter', postfilter)} needs the whole stem set ({', '.join(partners)} too)"
            raise SeptoolError(f"{needed}: {err}") from None
    chosen = chosen if chosen is not None else loaded.sources
    missing = [s for s in chosen if s not in loaded.sources]
    if missing:
        raise SeptoolError(f"the model has no decoder for {', '.join(missing)}; it has {', '.join(loaded.sources)}")
    if spec is None:
        return loaded, chosen, None
    sets = sets_of(chosen)
    if not sets:
        raise SeptoolError(
            f"{argument('postfilter', postfilter)}: {', '.join(chosen)} belong to no stem set (sources that add "
            "up to the mixture), so there is no mixture to share"
        )
    for name, members in sets.items():
        absent = [s for s in members if s not in loaded.sources]
        if absent:
            raise SeptoolError(
                f"{argument('postfilter', postfilter)} shares the mixture among {', '.join(members)} "
                f"(stem set {name!r}); the model has no decoder for {', '.join(absent)}"
            )
    return loaded, chosen, PostFilter(spec, tuple(tuple(m) for m in sets.values()), iterations)


def _separate_file(separator, info, targets: dict[str, Path], fmt, bits, progress) -> SeparatedTrack:
    writers: dict[str, audio_io.AtomicWriter] = {}
    outputs: dict[str, Path] = {}
    created = [d for path in targets.values() for d in (path.parent, *path.parent.parents) if not d.exists()]
    try:
        for s, path in targets.items():
            try:
                with signals_deferred():  # a signal now would leave a temporary file no writer holds
                    writers[s] = audio_io.AtomicWriter(path, info.samplerate, fmt, bits)
            except OSError as err:
                raise SeptoolError(f"{path}: cannot write output ({err.strerror or err})") from None
        back = {s: audio_io.StreamResampler(audio_io.SAMPLE_RATE, info.samplerate) for s in targets}
        remaining = {s: info.frames for s in targets}

        def emit(source: str, chunk) -> None:
            if not np.isfinite(chunk).all():
                raise SeptoolError(
                    f"{info.path}: the {source} decoder produced NaN or infinite samples; its weights are damaged "
                    "(nothing was written)"
                )
            chunk = chunk[:, : remaining[source]]
            remaining[source] -= chunk.shape[1]
            writers[source].write(chunk)

        length, passes = info.frames_at_model_rate, 2 if separator.needs_first_pass else 1

        def report(offset: int):
            return (lambda done, total: progress(info.path, offset + done, passes * total)) if progress else None

        statistics = separator.first_pass(audio_io.read_at_model_rate(info), length, report(0))
        blocks = audio_io.read_at_model_rate(info)
        for part in separator.stream(blocks, length, report((passes - 1) * length), statistics):
            for s, chunk in part.items():
                for out in back[s].push(chunk):
                    emit(s, out)
        for s in targets:
            for out in back[s].flush():
                emit(s, out)
        for s, writer in writers.items():
            outputs[s] = writer.commit()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        for path in outputs.values():  # a track is written whole or not at all
            path.unlink(missing_ok=True)
        for folder in sorted(set(created), key=lambda d: len(d.parts), reverse=True):  # the track folders we made
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    return SeparatedTrack(
        info.path,
        outputs,
        {s: w.clipped for s, w in writers.items()},
        {s: w.peak for s, w in writers.items()},
        info.duration,
    )


def train(
    out_dir: str | os.PathLike,
    *,
    musdb: str | os.PathLike | None = None,
    data: dict[str, str | os.PathLike] | None = None,
    sources: Sequence[str] | None = None,
    config: TrainConfig | None = None,
    resume: bool = False,
    valid_fraction: float = 0.15,
    progress: Callable[[dict], None] | None = None,
    cache: str | os.PathLike | None = None,
    init: str | os.PathLike | None = None,
    data_format: str | None = None,
) -> TrainResult:
    """Train a model directory from MUSDB18 (``musdb``) or one database per source (``data``).

    Databases are read in any registered dataset format, detected or named by ``data_format``.

    Every database is checked before training starts. With ``musdb``, the sources' independent
    databases are derived as in the paper (§4.2); the simultaneous procedure uses its tracks
    with all targets. Each source must be registered by a plugin whose dataset spec accepts
    the database's format. ``init``: start from a trained model directory's encoder and decoders
    (fine-tuning; its size must be ``config.size``) instead of random weights.
    """
    config = config or TrainConfig()
    check_writable(out_dir)
    reg = registry()
    if init is not None and config.procedure == "independent":
        raise SeptoolError(f"{argument('init')} starts from one shared model; the independent procedure has none")
    if (musdb is None) == (not data):
        raise SeptoolError(
            f"give either a MUSDB18 folder ({argument('musdb')}) or one database per source ({argument('data')})"
        )
    chosen = list(sources) if sources else (list(data) if data else [s for s in MUSDB_STEMS if s in reg.sources])
    specs = {s: reg.get(s) for s in chosen}
    if data and set(chosen) != set(data):
        raise SeptoolError(
            f"{argument('data')} names {', '.join(data)} but {argument('sources')} asks for {', '.join(chosen)}"
        )
    audio_cache = AudioCache(Path(cache) if cache else None)
    if musdb is not None:
        outside = [s for s in chosen if s not in MUSDB_STEMS]
        if outside:
            raise SeptoolError(f"MUSDB18 has no {outside[0]!r} stem; give it its own database ({argument('data')})")
        dbs = from_musdb(
            Path(musdb), chosen, config.procedure == "simultaneous", config.seed, valid_fraction, audio_cache,
            formats=reg.formats, accepted={s: spec.dataset.formats for s, spec in specs.items()},
            data_format=data_format,
        )  # fmt: skip
    else:
        if config.procedure == "simultaneous":
            raise SeptoolError(
                f"the simultaneous procedure needs every target for every track: use {argument('musdb')}"
            )
        assert data is not None  # either musdb or data, checked above
        dbs = from_folders(
            {s: Path(p) for s, p in data.items()},
            {s: spec.target for s, spec in specs.items()},
            {s: spec.dataset.formats for s, spec in specs.items()},
            config.seed,
            valid_fraction,
            audio_cache,
            formats=reg.formats,
            data_format=data_format,
        )
    widths = {s: spec.decoder_widths for s, spec in specs.items() if spec.decoder_widths}
    base = None
    if init is not None:
        start = load_model(init, sources=chosen, reg=reg)
        if start.encoder.backbone != config.backbone:
            raise SeptoolError(
                f"{init}: its encoder is of backbone {start.encoder.backbone!r}, not {config.backbone!r}; "
                f"pass its backbone ({argument('backbone', start.encoder.backbone)})"
            )
        size = reg.backbone(config.backbone).size(config.size)
        if canonical(start.encoder.encoder.config) != canonical(size["encoder"]):
            raise SeptoolError(
                f"{init}: its encoder is not of size {config.size!r}; pass its size ({argument('size')})"
            )
        base = (start.encoder, dict(start.model.decoders))
    return Trainer(config, dbs, Path(out_dir), progress, base=base, decoder_widths=widths).run(resume=resume)


def evaluate(
    out_dir: str | os.PathLike = "results",
    *,
    model: str | os.PathLike | LoadedModel | None = None,
    musdb: str | os.PathLike | None = None,
    subset: str = "test",
    data: str | os.PathLike | None = None,
    sources: Sequence[str] | None = None,
    oracle_mask: str | None = None,
    jobs: int = 1,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    precision: str = "auto",
    postfilter: str = "none",
    wiener_iterations: int = 1,
    report: bool = False,
    data_format: str | None = None,
) -> tuple[Results, list[Path]]:
    """Separate and score every track of a MUSDB18 subset (``musdb``) or of a database in any
    registered format (``data``; its format detected, or named by ``data_format``) (paper §4.1).

    With ``oracle_mask`` (``irm`` or ``ibm``) the references' ideal masks replace the model.
    ``postfilter`` and ``wiener_iterations`` are as in ``separate``.
    Writes per-track museval JSON, ``summary.csv`` and ``sdr.png`` under ``out_dir``; with
    ``report``, a listening page too, ``out_dir/REPORT_FOLDER/index.html`` (``listening.py``: each
    track's mixture, and each source's reference, estimate and residual, with spectrograms and
    scores per window), which ``report`` puts beside other models' reports.
    """
    if (musdb is None) == (data is None):
        raise SeptoolError(
            f"give either a MUSDB18 folder ({argument('musdb')}) or a database in any format ({argument('data')})"
        )
    if jobs < 1:
        raise SeptoolError(f"jobs must be at least 1, got {jobs}")
    check_subset(subset, registry().formats)
    check_writable(out_dir)
    if oracle_mask is None:
        loaded, chosen, post = _prepare(model, sources or None, postfilter, wiener_iterations)
    else:
        loaded, chosen = None, list(sources) if sources else list(MUSDB_STEMS)
    root = Path(musdb if musdb is not None else cast(str | os.PathLike, data))  # one of them, checked above
    tracks = evaluation_tracks(root, chosen, subset, formats=registry().formats, data_format=data_format)
    if loaded is None:
        label, title, model_fields = f"oracle {oracle_mask}", f"oracle {oracle_mask}", {"oracle": oracle_mask}

        def separated(track):
            return oracle(track, oracle_mask)
    else:
        separator = Separator(loaded.model, chosen, device, precision=precision, postfilter=post)
        filtered = f", {post.kind} post-filter" if post else ""
        label = f"model {loaded.files.get('encoder', '')} ({precision}{filtered})"
        title, model_fields = _model_title(loaded), _model_fields(loaded)

        def separated(track):
            return separator.separate(track.mixture)

    out_dir = Path(out_dir)
    with writing_report(out_dir / REPORT_FOLDER, "evaluation") if report else contextlib.nullcontext() as writer:

        def estimate(track):
            estimates = separated(track)
            if writer is not None:
                writer.add_track(track.name, track.mixture, estimates, track.references)
            return estimates

        results = evaluate_tracks(tracks, estimate, jobs, progress)
        written = write_results(results, out_dir, label)
        if writer is not None:
            protocol = {
                "metric": "BSSEval v4 (septool.bsseval, museval's figures), all sources jointly",
                "windows": "1 s, not overlapping; a track's score is the median over its windows (windows where "
                "BSSEval gives NaN, such as a silent reference, left out), a set's the mean over its tracks",
                "data": f"MUSDB18 {musdb}, subset {subset}" if musdb is not None else f"pair folders {data}",
                "sources": chosen, "precision": precision if loaded is not None else "fp32",
                "post-filter": (f"{post.kind}" if loaded is not None and post else "none"), "device": device,
            }  # fmt: skip
            writer.finish(title, model_fields, protocol, results, out_dir / "sdr.png")
    if report:
        written.append(out_dir / REPORT_FOLDER / REPORT_PAGE)
    return results, written


def report(
    folders: Sequence[str | os.PathLike], *, out_dir: str | os.PathLike, names: Sequence[str] | None = None
) -> Path:
    """Put the listening reports of ``folders`` (results folders of ``evaluate(..., report=True)``,
    or their report folders) side by side on one page in ``out_dir``; return the page's path.

    ``names``: each report's column title (default: the folder names)."""
    reports = [Path(f) / REPORT_FOLDER if (Path(f) / REPORT_FOLDER).is_dir() else Path(f) for f in folders]
    if names is not None and len(names) != len(reports):
        raise SeptoolError(f"{len(names)} names for {len(reports)} reports")
    check_writable(out_dir)
    titles = names or [Path(f).resolve().name for f in folders]
    return compare_reports(reports, Path(out_dir), titles)


def add_decoder(
    name: str,
    *,
    data: str | os.PathLike,
    encoder: str = "frozen",
    model: str | os.PathLike | None = None,
    other_data: dict[str, str | os.PathLike] | None = None,
    force: bool = False,
    out_dir: str | os.PathLike | None = None,
    config: TrainConfig | None = None,
    description: str = "",
    valid_fraction: float = 0.15,
    progress: Callable[[dict], None] | None = None,
) -> AddedDecoder:
    """Train a decoder for a new source ``name`` on a trained encoder and register it as a plugin.

    ``frozen`` (default): the encoder is untouched (not even its BatchNorm statistics) and no
    gradient flows through it; the decoder becomes a local plugin's weights, usable with that
    encoder at once. ``finetune``: encoder and decoders train interleaved (Algorithm 1) with the
    existing sources' databases (``other_data``), into a new model directory ``out_dir``; without
    those databases it is refused (it would degrade the other decoders) unless ``force``.
    ``model``: the model to extend (default: the shipped one). transfer.py does the work.
    """
    check_new_source(name, description, encoder)
    return add_to_model(
        name, Path(data), load_model(model), mode=encoder,
        other_data={s: Path(p) for s, p in (other_data or {}).items()}, force=force,
        out_dir=Path(out_dir) if out_dir is not None else None, config=config or TrainConfig(),
        description=description, valid_fraction=valid_fraction, progress=progress,
    )  # fmt: skip


def remove_decoder(name: str) -> list[Path]:
    """Remove a source added with ``add_decoder``: its local plugin and weights, its training run
    and its fine-tuned model if that went to the default folder (one given as ``out_dir`` is the
    caller's and stays). Returns the paths removed."""
    removed = remove_local_plugin(name)
    reset_plugins()
    return removed


def new_plugin(name: str, *, folder: str | os.PathLike, description: str = "") -> Path:
    """Write a pip-installable package for source ``name``, with its decoder if one was added."""
    try:
        SourceSpec(name)
    except ValueError as err:
        raise SeptoolError(str(err)) from None
    check_writable(folder)
    return write_package(name, Path(folder), description or name)
