"""The septool command line: parses arguments, calls septool's API, draws with rich."""

from __future__ import annotations

import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from typer.exceptions import TyperException

import septool

LOSS_HELP = "l1 (the paper's) or mse on normalized magnitudes; mse-raw on magnitudes."
# the post-filter options that separate and evaluate share
PostFilterOption = Annotated[
    str,
    typer.Option(
        "--filter",
        help="none or a post-filter (softmask, wiener; `septool plugins` lists all): share the mixture "
        "among a stem set's estimates.",
    ),
]
WienerIterationsOption = Annotated[
    int, typer.Option(help="Iterations of an iterative --filter (wiener's EM; the first uses the song's covariances).")
]
app = typer.Typer(
    help="Music source separation with a shared encoder and one decoder per source.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts print as written: "[train]" is a TOML table, not markup
)
# markup off: file names and messages may hold [brackets], which must print as they are
console = Console(stderr=True, markup=False)
out = Console(markup=False)
DEBUG_ENV = "SEPTOOL_DEBUG"
debugging = {"on": False}  # set by --debug for this run, read by main() when an error reaches it


@app.callback()
def options(
    debug: Annotated[
        bool,
        typer.Option("--debug", help=f"Show the full traceback of any error, for a bug report (or {DEBUG_ENV}=1)."),
    ] = False,
) -> None:
    """Music source separation with a shared encoder and one decoder per source."""
    debugging["on"] = debug


# the options whose names are not their Python argument's (`--out` for out_dir...): core errors name
# arguments, and the CLI names them by these
FLAGS = {
    "out_dir": "--out", "postfilter": "--filter", "fmt": "--format", "data_format": "--format",
    "oracle_mask": "--oracle", "soundfonts": "--soundfont", "other_data": "--data SOURCE=PATH",
}  # fmt: skip


def flag(argument: str) -> str:
    """The command-line option of a Python argument named in a core error."""
    return FLAGS.get(argument, "--" + argument.replace("_", "-"))


def labelled(label: str, style: str, message: object) -> Text:
    """``label`` in colour, then the message verbatim (never read as rich markup)."""
    return Text.assemble((label, style), f" {message}")


HEARTBEAT_SECONDS = 30.0


class Heartbeat:
    """Progress for logs: where stderr is not a terminal, rich draws no bars, so the job's state
    is printed as a line instead, at most every ``HEARTBEAT_SECONDS`` (none in a terminal)."""

    def __init__(self) -> None:
        self.active = not console.is_terminal
        self.last = time.monotonic()

    def __call__(self, text: str) -> None:
        if self.active and time.monotonic() - self.last >= HEARTBEAT_SECONDS:
            console.print(text, highlight=False, soft_wrap=True)
            self.last = time.monotonic()


def split_sources(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise septool.SeptoolError("--sources is empty; give names such as vocals,drums")
    return names


@app.command()
def separate(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files, or folders of audio files.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = Path("separated"),
    sources: Annotated[str | None, typer.Option(help="Comma-separated sources (default: all the model has).")] = None,
    filename: Annotated[
        str, typer.Option(help="Output path template: {track}, {source}, {ext}.")
    ] = septool.DEFAULT_FILENAME,
    fmt: Annotated[str, typer.Option("--format", help="wav or flac.")] = "wav",
    bits: Annotated[str, typer.Option(help="16, 24 or 32f (32-bit float, wav only).")] = "16",
    device: Annotated[str, typer.Option("-d", "--device", help="cpu, cuda or mps.")] = "cpu",
    model: Annotated[Path | None, typer.Option(help="Model directory (default: the shipped model).")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Patches per forward pass (default: 1 on CPU, 8 on GPU).")
    ] = None,
    overlap: Annotated[float, typer.Option(help="Overlap between patches, 0 <= overlap < 1.")] = 0.25,
    precision: Annotated[str, typer.Option(help="auto (bf16 where fast: GPU, AMX CPUs), fp32 or bf16.")] = "auto",
    postfilter: PostFilterOption = "none",
    wiener_iterations: WienerIterationsOption = 1,
    runtime: Annotated[
        str, typer.Option(help="torch, or onnx (ONNX Runtime on the model's ONNX export; pip install 'septool[onnx]').")
    ] = "torch",
    report: Annotated[
        bool, typer.Option("--report", help="Also write a listening page, OUT/report/index.html.")
    ] = False,
) -> None:
    """Separate songs into stems."""
    with Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks: dict[Path, int] = {}
        beat = Heartbeat()

        def progress(track: Path, done: int, total: int) -> None:
            if track not in tasks:
                tasks[track] = bar.add_task(track.name, total=total)
            bar.update(tasks[track], completed=done)
            beat(f"separating {track}: {100 * done / max(total, 1):.0f}% ({len(tasks)} of the inputs begun)")

        chosen = split_sources(sources)
        loaded = septool.load_model(model) if chosen is None else model
        results = septool.separate(
            inputs,
            out_dir=out_dir,
            sources=chosen,
            filename=filename,
            fmt=fmt,
            bits=bits,
            device=device,
            model=loaded,
            progress=progress,
            batch_size=batch_size,
            overlap=overlap,
            precision=precision,
            postfilter=postfilter,
            wiener_iterations=wiener_iterations,
            runtime=runtime,
            report=report,
        )
    for source, reason in getattr(loaded, "skipped", {}).items():
        console.print(labelled("warning:", "yellow", f"no {source} stem: {reason}"), soft_wrap=True)
    for track in results:
        for source, count in track.clipped.items():
            if count:
                console.print(
                    labelled(
                        "warning:",
                        "yellow",
                        f"{track.outputs[source]}: {count} samples clipped "
                        f"(peak {track.peaks[source]:.2f}); use --bits 32f to keep them",
                    )
                )
    out.print(f"wrote {sum(len(t.outputs) for t in results)} stems for {len(results)} track(s) under {out_dir}")
    if report:
        out.print(f"listening page: {out_dir / 'report' / 'index.html'}")


@app.command()
def export(
    model: Annotated[
        Path | None, typer.Argument(help="Model directory (default: the shipped model).", show_default=False)
    ] = None,
    out_path: Annotated[Path, typer.Option("-o", "--out", help="File to write.")] = Path("septool.onnx"),
    fmt: Annotated[str, typer.Option("--format", help="onnx.")] = "onnx",
    sources: Annotated[str | None, typer.Option(help="Comma-separated decoders (default: all the model has).")] = None,
    dynamic_batch: Annotated[bool, typer.Option(help="A free batch dimension (default: one patch per run).")] = False,
) -> None:
    """Export the encoder and decoders as one graph (ONNX) over normalized magnitude patches."""
    path = septool.export(out_path, model=model, sources=split_sources(sources), fmt=fmt, dynamic_batch=dynamic_batch)
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); examples/onnx_separate.py shows how to run it")


@app.command()
def synth(
    out_dir: Annotated[
        Path | None, typer.Argument(help="Folder to write the database into.", show_default=False)
    ] = None,
    hours: Annotated[float, typer.Option(help="Hours of music to render.")] = 0.0,
    sources: Annotated[str, typer.Option(help="Stems to write (comma-separated).")] = "vocals,drums,bass,other",
    extra: Annotated[str, typer.Option(help="Extra stems folded out of other: guitar, piano.")] = "",
    layout: Annotated[str, typer.Option(help="musdb, pairs or stems.")] = "musdb",
    seed: Annotated[int, typer.Option(help="Fixes every choice.")] = 0,
    soundfont: Annotated[list[Path] | None, typer.Option(help="SoundFont(s) to use (default: all installed).")] = None,
    voices: Annotated[
        str, typer.Option(help="Singers: all, train, test (held out for the shipped model's test set) or names.")
    ] = "all",
    jobs: Annotated[int, typer.Option("-j", "--jobs", help="Songs rendered in parallel.")] = 1,
    independent: Annotated[bool, typer.Option(help="One database per source, no song shared.")] = False,
    subset: Annotated[str, typer.Option(help="musdb subset folder: train or test.")] = "train",
    song_seconds: Annotated[
        str, typer.Option(help="Song lengths MIN,MAX in seconds (songs end on a section boundary: a bit longer).")
    ] = "35,75",
    list_voices: Annotated[bool, typer.Option("--list-voices", help="Print the voice bank and exit.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --list-voices: a JSON list instead of a table.")
    ] = False,
) -> None:
    """Render a multitrack database of procedurally composed songs."""

    if list_voices:
        bank = septool.voice_bank()
        if as_json:
            import json

            out.print(json.dumps(bank, indent=1, ensure_ascii=False), soft_wrap=True)
            return
        table = Table(title="septool synth: the voice bank")
        for column in ("name", "speaker", "engine", "language", "sex", "rate", "licence", "installed", "held out"):
            table.add_column(column)
        for voice in bank:
            table.add_row(*(str(voice[k]) for k in ("name", "speaker", "engine", "language", "sex", "rate", "licence")),
                          "yes" if voice["installed"] else f"no ({voice['package']})",
                          "yes" if voice["held_out"] else "")  # fmt: skip
        out.print(table)
        speakers = {v["speaker"] for v in bank if v["installed"]}
        out.print(f"{len(speakers)} distinct singers installed of {len({v['speaker'] for v in bank})} in the bank")
        return
    if out_dir is None:
        raise septool.SeptoolError("give the folder to write the database into (or --list-voices)")
    names = split_sources(voices) or []
    low, comma, high = song_seconds.partition(",")
    try:
        lengths = (float(low), float(high))
    except ValueError:
        raise septool.SeptoolError(f"--song-seconds takes MIN,MAX in seconds, got {song_seconds!r}") from None
    beat = Heartbeat()

    def rendered(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        beat(f"rendering: {done}/{total} songs")

    with Progress(TextColumn("[bold]rendering"), BarColumn(), MofNCompleteColumn(), TextColumn("songs"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:  # fmt: skip
        task = bar.add_task("songs", total=None)
        result = septool.synthesize(
            out_dir,
            hours=hours,
            sources=split_sources(sources) or [],
            extras=split_sources(extra) if extra else [],
            layout=layout,
            seed=seed,
            soundfonts=soundfont,
            jobs=jobs,
            independent=independent,
            subset=subset,
            progress=rendered,
            song_seconds=lengths,
            voices=names[0] if len(names) == 1 and names[0] in ("all", "train", "test") else names,
        )
    out.print(
        f"rendered {len(result.songs)} songs, {result.audio_seconds / 60:.1f} min of audio in "
        f"{result.wall_seconds:.0f} s ({result.speed:.1f} s of audio per second)"
        + (f"; {result.skipped} songs already present were kept" if result.skipped else "")
        + f" -> {out_dir}"
    )


def parse_data(items: list[str] | None) -> dict[str, str]:
    data = {}
    for item in items or []:
        source, sep, path = item.partition("=")
        if not sep or not source or not path:
            raise septool.SeptoolError(f"--data takes SOURCE=PATH, got {item!r}")
        data[source.strip()] = path
    return data


def read_config(path: Path | None) -> dict:
    """``septool.toml``: a [train] table of options and a [data] table of SOURCE = PATH."""
    if path is None:
        return {}
    import tomllib

    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise septool.SeptoolError(f"{path}: cannot read config ({err})") from None


@app.command()
def train(
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Model directory to write.")] = Path("model"),
    musdb: Annotated[Path | None, typer.Option(help="MUSDB18 or MUSDB18-HQ root (its train subset).")] = None,
    data: Annotated[list[str] | None, typer.Option(help="SOURCE=PATH, one database per source (repeat).")] = None,
    data_format: Annotated[
        str | None, typer.Option("--format", help="Read the databases in this format (default: detected).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="septool.toml with [train] and [data] tables.")] = None,
    sources: Annotated[str | None, typer.Option(help="Sources to train (default: those of the data).")] = None,
    interleave: Annotated[
        bool, typer.Option("--interleave", help="Algorithm 1: interleaved mini-batches (the default procedure).")
    ] = False,
    accumulate: Annotated[
        bool, typer.Option("--accumulate", help="With --interleave: Algorithm 2, encoder gradients summed.")
    ] = False,
    simultaneous: Annotated[
        bool, typer.Option("--simultaneous", help="Baseline: one database, the four losses summed.")
    ] = False,
    independent: Annotated[bool, typer.Option("--independent", help="Baseline: one full network per source.")] = False,
    backbone: Annotated[
        str, typer.Option(help="Network family: unet (the paper's) or lstm; `septool plugins` lists all.")
    ] = "unet",
    size: Annotated[
        str | None,
        typer.Option(
            help="The backbone's size: unet encoder (default), encoder+, tiny; lstm small (default), large, tiny."
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Most epochs.")] = 1000,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without validation gain.")] = 30,
    batch_size: Annotated[int, typer.Option(help="Patches per mini-batch.")] = 32,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-4,
    batches_per_epoch: Annotated[int | None, typer.Option(help="Cap on batches per source per epoch.")] = None,
    valid_patches: Annotated[int, typer.Option(help="Validation patches per source.")] = 32,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget.")] = None,
    seed: Annotated[int, typer.Option(help="Fixes initialization, splits and crops.")] = 0,
    device: Annotated[str, typer.Option("-d", "--device", help="cpu, cuda or mps.")] = "cpu",
    precision: Annotated[str, typer.Option(help="auto (bf16 where fast: GPU, AMX CPUs), fp32 or bf16.")] = "auto",
    augment: Annotated[bool, typer.Option(help="Random scaling, panning and filtering.")] = True,
    remix: Annotated[
        float, typer.Option(help="Chance (0-1) that a crop is mixed with another song's rest (needs --augment).")
    ] = 0.0,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint in --out.")] = False,
    loss: Annotated[str, typer.Option(help=LOSS_HELP)] = "l1",
    init: Annotated[
        Path | None,
        typer.Option(help="Start from this model directory's weights (fine-tuning) instead of random ones."),
    ] = None,
) -> None:
    """Train the shared encoder and the decoders (the paper's four procedures)."""

    chosen = [name for name, flag in (("simultaneous", simultaneous), ("independent", independent)) if flag]
    if len(chosen) > 1 or (chosen and (interleave or accumulate)):
        raise septool.SeptoolError("choose one procedure: --interleave [--accumulate], --simultaneous or --independent")
    procedure = chosen[0] if chosen else ("interleaved-acc" if accumulate else "interleaved")
    settings = read_config(config)
    options = dict(
        procedure=procedure, backbone=backbone, size=size, batch_size=batch_size, lr=lr, max_epochs=epochs,
        patience=patience, batches_per_epoch=batches_per_epoch, valid_patches=valid_patches, seed=seed, device=device,
        precision=precision, augment=augment, remix=remix, max_minutes=max_minutes, loss=loss,
    )  # fmt: skip
    unknown = set(settings.get("train", {})) - set(options)
    if unknown:
        raise septool.SeptoolError(f"{config}: unknown [train] option(s) {', '.join(sorted(unknown))}")
    options |= settings.get("train", {})
    databases = {k: str(v) for k, v in settings.get("data", {}).items()} | parse_data(data)
    loss_name = str(options["loss"]).upper()
    status = {"text": "checking databases..."}

    def render():
        grid = Table.grid(padding=(0, 2))
        grid.add_row(status["text"])
        return grid

    def progress(event: dict) -> None:
        if "epoch_done" in event:
            rec = event["epoch_done"]
            cells = "  ".join(f"{s} {rec['train'][s]:.4f}/{rec['valid'][s]:.4f}" for s in rec["valid"])
            out.print(f"epoch {rec['epoch']:4d}  train/valid {loss_name}  {cells}  ({rec['seconds']:.0f} s)")
            return
        losses = "  ".join(f"{s} {v:.4f}" for s, v in event["loss"].items())
        status["text"] = f"epoch {event['epoch']}  batch {event['step']}/{event['steps']}  {losses}"
        live.update(render())
        beat(status["text"])

    beat = Heartbeat()

    with Live(render(), console=console, transient=True) as live:
        result = septool.train(
            out_dir,
            musdb=musdb,
            data=databases or None,
            sources=split_sources(sources),
            config=septool.TrainConfig(**options),
            resume=resume,
            progress=progress,
            init=init,
            data_format=data_format,
        )
    out.print(
        f"{result.stopped} after {result.epochs} epochs ({result.seconds:.0f} s, {result.patches_seen} patches); "
        f"best validation {loss_name} {result.best_loss:.3f} of silence's at epoch {result.best_epoch}; "
        f"model written to {result.model_dir}"
    )


@app.command()
def evaluate(
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Folder for JSON, CSV and PNG results.")] = Path(
        "results"
    ),
    model: Annotated[Path | None, typer.Option(help="Model directory (default: the shipped model).")] = None,
    musdb: Annotated[Path | None, typer.Option(help="MUSDB18 or MUSDB18-HQ root.")] = None,
    subset: Annotated[str, typer.Option(help="MUSDB18 subset.")] = "test",
    data: Annotated[
        Path | None, typer.Option(help="A database in any format: pair or stem folders, a CSV list...")
    ] = None,
    data_format: Annotated[
        str | None, typer.Option("--format", help="Read --data in this format (default: detected).")
    ] = None,
    sources: Annotated[str | None, typer.Option(help="Comma-separated sources (default: the model's).")] = None,
    oracle: Annotated[
        str | None, typer.Option(help="Score instead an ideal mask (irm, ibm) or the unseparated mixture.")
    ] = None,
    jobs: Annotated[int, typer.Option("-j", "--jobs", help="Tracks scored in parallel.")] = 1,
    device: Annotated[str, typer.Option("-d", "--device", help="cpu, cuda or mps.")] = "cpu",
    precision: Annotated[str, typer.Option(help="auto, fp32 or bf16 separation.")] = "auto",
    postfilter: PostFilterOption = "none",
    wiener_iterations: WienerIterationsOption = 1,
    report: Annotated[
        bool, typer.Option("--report", help="Also write a listening page, OUT/report/index.html.")
    ] = False,
) -> None:
    """Score separations with BSSEval v4 (museval's figures): median over 1 s windows, mean over tracks."""
    beat = Heartbeat()

    def scored(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        beat(f"evaluating: {done}/{total} tracks")

    with Progress(TextColumn("[bold]evaluating"), BarColumn(), MofNCompleteColumn(), TextColumn("tracks"),
                  console=console, transient=True) as bar:  # fmt: skip
        task = bar.add_task("tracks", total=None)
        results, written = septool.evaluate(
            out_dir, model=model, musdb=musdb, subset=subset, data=data, sources=split_sources(sources),
            oracle_mask=oracle, jobs=jobs, device=device, progress=scored, precision=precision,
            postfilter=postfilter, wiener_iterations=wiener_iterations, report=report, data_format=data_format,
        )  # fmt: skip
    summary = results.summary()
    table = Table(title=f"{'oracle ' + oracle if oracle else 'model'}: mean over {len(results.tracks)} tracks of "
                  "the median over 1 s windows (dB)")  # fmt: skip
    for column in ("source", "SDR", "SIR", "SAR", "ISR"):
        table.add_column(column, justify="right" if column != "source" else "left")
    for source, metrics in summary.items():
        table.add_row(source, *(f"{metrics[m]:.2f}" for m in ("SDR", "SIR", "SAR", "ISR")))
    out.print(table)
    out.print(f"wrote {len(written)} files under {out_dir}")
    if report:
        out.print(f"listening page: {out_dir / 'report' / 'index.html'}")


@app.command("report")
def report_command(
    results: Annotated[
        list[Path], typer.Argument(help="Results folders of `septool evaluate --report` (or their report folders).")
    ],
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Folder for the comparison page.")] = Path("report"),
    names: Annotated[
        str | None, typer.Option(help="Comma-separated column titles, one per folder (default: folder names).")
    ] = None,
) -> None:
    """Put several listening reports side by side: one column per model, the same excerpts."""
    page = septool.report(results, out_dir=out_dir, names=[n.strip() for n in names.split(",")] if names else None)
    out.print(f"listening page: {page}")


experiment_app = typer.Typer(help="Reproduce the paper's experiments.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("paper")
def experiment_paper(
    musdb: Annotated[Path | None, typer.Option(help="MUSDB18-shaped root to train from (its train subset).")] = None,
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Folder for the five models and results.")] = Path(
        "experiment"
    ),
    eval_musdb: Annotated[Path | None, typer.Option(help="MUSDB18-shaped root to evaluate on.")] = None,
    subset: Annotated[str, typer.Option(help="Subset to evaluate on.")] = "test",
    budget: Annotated[float, typer.Option(help="Training minutes per configuration.")] = 60.0,
    epochs: Annotated[int, typer.Option(help="Most epochs per configuration.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Patches per mini-batch.")] = 32,
    batches_per_epoch: Annotated[int | None, typer.Option(help="Cap on batches per epoch.")] = None,
    device: Annotated[str, typer.Option("-d", "--device")] = "cpu",
    precision: Annotated[str, typer.Option(help="auto, fp32 or bf16.")] = "auto",
    tiny: Annotated[bool, typer.Option(help="Tiny networks (a smoke test, not the paper's sizes).")] = False,
    backbone: Annotated[str, typer.Option(help="Network family of every configuration: unet or lstm.")] = "unet",
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-4,
    valid_patches: Annotated[int, typer.Option(help="Validation patches per source.")] = 32,
    parallel: Annotated[
        bool, typer.Option(help="Train the five at once, one process each (a large GPU has room).")
    ] = False,
    stage: Annotated[
        str, typer.Option(help="all; train (stop after training); evaluate (score models trained before).")
    ] = "all",
    jobs: Annotated[int, typer.Option("-j", "--jobs", help="Tracks scored in parallel.")] = 1,
) -> None:
    """Tables 2 and 3: five configurations, equal budgets, scored beside the paper's figures."""

    base = septool.TrainConfig(max_minutes=budget, max_epochs=epochs, batch_size=batch_size, lr=lr,
                               batches_per_epoch=batches_per_epoch, device=device, precision=precision,
                               valid_patches=valid_patches, backbone=backbone)  # fmt: skip
    sizes = {"encoder": "tiny", "encoder+": "tiny"} if tiny else None
    rows = septool.run_paper_experiment(out_dir, musdb=musdb, eval_musdb=eval_musdb, subset=subset, base=base,
                                        sizes=sizes, progress=lambda m: console.print(m), parallel=parallel,
                                        stage=stage, jobs=jobs)  # fmt: skip
    if not rows:
        out.print(f"trained the five configurations in {out_dir}; score them with --stage evaluate")
        return
    for metric in ("SDR", "SIR"):
        table = Table(title=f"{metric} in dB: ours (paper's, on MUSDB18)")
        for column in ("configuration", "vocals", "drums", "bass", "other"):
            table.add_column(column)
        for cells in septool.paper_table_rows(rows, metric=metric):
            table.add_row(*cells)
        out.print(table)
    cost = Table(title="cost")
    for column in ("configuration", "trainable parameters", "separation s", "training s", "epochs", "patches"):
        cost.add_column(column)
    for row in rows:
        cost.add_row(row.name, f"{row.parameters:,}", f"{row.separation_seconds:.1f}", f"{row.train_seconds:.0f}",
                     str(row.epochs), str(row.patches_seen))  # fmt: skip
    out.print(cost)
    out.print(f"SIR on rendered music can be ill-conditioned (see docs/evaluation.md). Results in {out_dir}")


@app.command("add-decoder")
def add_decoder(
    name: Annotated[str, typer.Argument(help="Name of the new source, e.g. guitar.", show_default=False)],
    data: Annotated[
        list[str], typer.Option(help="The new source's database; with finetune also SOURCE=PATH for the others.")
    ],
    encoder: Annotated[str, typer.Option(help="frozen (only the decoder trains) or finetune.")] = "frozen",
    model: Annotated[Path | None, typer.Option(help="Trained model to build on (default: the shipped one).")] = None,
    out_dir: Annotated[Path | None, typer.Option("-o", "--out", help="finetune: the new model directory.")] = None,
    force: Annotated[bool, typer.Option(help="finetune even without the other sources' databases.")] = False,
    epochs: Annotated[int, typer.Option(help="Most epochs.")] = 100,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without validation gain.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Patches per mini-batch.")] = 16,
    batches_per_epoch: Annotated[int | None, typer.Option(help="Cap on batches per epoch.")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget.")] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-4,
    device: Annotated[str, typer.Option("-d", "--device", help="cpu, cuda or mps.")] = "cpu",
    precision: Annotated[str, typer.Option(help="auto (bf16 where fast: GPU, AMX CPUs), fp32 or bf16.")] = "auto",
    loss: Annotated[str, typer.Option(help=LOSS_HELP)] = "l1",
    description: Annotated[str, typer.Option(help="One line for septool plugins.")] = "",
) -> None:
    """Add a source: train its decoder on the trained encoder and register it as a local plugin."""
    own = [d for d in data if "=" not in d]
    if len(own) != 1:
        raise septool.SeptoolError(f"give the {name} database once as --data PATH (others as --data SOURCE=PATH)")
    config = septool.TrainConfig(max_epochs=epochs, patience=patience, batch_size=batch_size, lr=lr,
                                 batches_per_epoch=batches_per_epoch, max_minutes=max_minutes, device=device,
                                 precision=precision, loss=loss)  # fmt: skip
    loss_name = loss.upper()

    beat = Heartbeat()

    def progress(event: dict) -> None:
        if "epoch_done" in event:
            rec = event["epoch_done"]
            cells = "  ".join(f"{s} {rec['valid'][s]:.4f}" for s in rec["valid"])
            out.print(f"epoch {rec['epoch']:4d}  validation {loss_name}  {cells}  ({rec['seconds']:.0f} s)")
        else:
            losses = "  ".join(f"{s} {v:.4f}" for s, v in event["loss"].items())
            status = f"epoch {event['epoch']}  batch {event['step']}/{event['steps']}  {losses}"
            live.update(Text(status))
            beat(status)

    with Live(Text("checking databases..."), console=console, transient=True) as live:
        added = septool.add_decoder(
            name, data=own[0], encoder=encoder, model=model, other_data=parse_data([d for d in data if "=" in d]),
            force=force, out_dir=out_dir, config=config, description=description, progress=progress,
        )  # fmt: skip
    where = added.model_dir if added.model_dir else added.weights
    out.print(f"added source {name!r} ({encoder} encoder, {added.training.epochs} epochs): plugin {added.plugin}")
    out.print(f"decoder: {where}")
    for source, before in added.training.initial_valid.items():
        after = (
            added.training.history[added.training.best_epoch - 1]["valid"][source]
            if added.training.best_epoch
            else before
        )
        out.print(f"  {source}: validation {loss_name} {before:.4f} before, {after:.4f} after")
        if after >= before:
            rose = f"{source}: its validation {loss_name} did not fall in training ({before:.4f} to {after:.4f})"
            console.print(labelled("warning:", "yellow", rose), soft_wrap=True)
    hint = f"--model {added.model_dir} " if added.model_dir else ""
    out.print(f"try: septool separate song.wav {hint}--sources {name}")


@app.command("remove-decoder")
def remove_decoder(name: Annotated[str, typer.Argument(help="A source added with add-decoder.")]) -> None:
    """Remove a source added with add-decoder."""
    removed = septool.remove_decoder(name)
    out.print(f"removed source {name!r}: {', '.join(map(str, removed))}", soft_wrap=True)


@app.command("new-plugin")
def new_plugin(
    name: Annotated[str, typer.Argument(help="Source name.")],
    folder: Annotated[Path, typer.Argument(help="Folder to write the package into.")],
    description: Annotated[str, typer.Option(help="One line describing the source.")] = "",
) -> None:
    """Write a pip-installable plugin package for a source (with its add-decoder weights, if any)."""
    path = septool.new_plugin(name, folder=folder, description=description)
    out.print(f"wrote package {path}; install it with: pip install {path}")


@app.command()
def plugins() -> None:
    """List plugins and what they register (sources, backbones, dataset formats, post-filters), and failures."""
    reg = septool.registry()
    table = Table(title="septool plugins")
    for column in ("plugin", "version", "sources", "weights", "backbones", "formats", "post-filters"):
        table.add_column(column)
    for info in reg.plugins:
        weights = ", ".join(
            f"{s}: {'yes' if reg.sources[s].weights is not None and reg.sources[s].weights.is_file() else 'no'}"
            for s in info.sources
        )
        units = (info.backbones, info.formats, info.postfilters)
        names = (", ".join(info.sources), weights, *(", ".join(u) for u in units))
        table.add_row(info.name, info.version, *names)
    out.print(table)
    if reg.backbones:
        sizes = Table(title="backbones")
        for column in ("backbone", "sizes (default first)", "description"):
            sizes.add_column(column)
        for name, spec in reg.backbones.items():
            names = [spec.default_size] + [n for n in spec.sizes if n != spec.default_size]
            sizes.add_row(name, ", ".join(names), spec.description)
        out.print(sizes)
    if reg.formats:
        formats = Table(title="dataset formats")
        for column in ("format", "subsets", "layout"):
            formats.add_column(column)
        for name, fmt in reg.formats.items():
            formats.add_row(name, ", ".join(fmt.subsets) or "-", fmt.description)
        out.print(formats)
    if reg.postfilters:
        filters = Table(title="post-filters (--filter)")
        for column in ("post-filter", "first pass", "iterative", "description"):
            filters.add_column(column)
        for name, spec in reg.postfilters.items():
            yes_no = ("yes" if spec.first_pass else "no", "yes" if spec.iterative else "no")
            filters.add_row(name, *yes_no, spec.description)
        out.print(filters)
    for failure in reg.failures:
        out.print(labelled("failed:", "red", f"{failure.name}: {failure.reason}"))


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that every writer on the stack removes its temporary file."""


def _terminate(signum, frame) -> None:
    raise Terminated


def _report(err: Exception) -> None:
    """One line and an exit status for any error: bad input (1), usage (2), or a bug in septool (70)."""
    if isinstance(err, septool.SeptoolError):
        console.print(labelled("error:", "red", err.naming(flag)), highlight=False, soft_wrap=True)
        sys.exit(1)
    if isinstance(err, TyperException):  # click's usage errors: an unknown command or option, a bad value
        if type(err).__name__ == "NoArgsIsHelpError":
            out.print(err.format_message())
        else:
            where = getattr(getattr(err, "ctx", None), "command_path", "septool")
            console.print(labelled("error:", "red", f"{err.format_message()} (see {where} --help)"), soft_wrap=True)
        sys.exit(getattr(err, "exit_code", 2) or 2)
    text = str(err).strip().splitlines()
    console.print(
        labelled("internal error:", "red", f"{type(err).__name__}: {text[-1] if text else ''} (a bug in septool; "
                 "--debug shows the traceback for a bug report)"),
        soft_wrap=True,
    )  # fmt: skip
    sys.exit(70)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """septool's own warnings as one ``warning:`` line; others as Python prints them."""
    if issubclass(category, septool.SlowPathWarning):
        console.print(labelled("warning:", "yellow", message), soft_wrap=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main() -> None:
    """Console entry point: one line and a non-zero exit status for any error, never a traceback.

    ``SEPTOOL_DEBUG=1`` or ``septool --debug ...`` lets errors propagate with their traceback, for bug reports.
    """
    signal.signal(signal.SIGTERM, _terminate)
    warnings.showwarning = _show_warning
    warnings.simplefilter("always", septool.SlowPathWarning)  # each run says it, whatever ran before
    debugging["on"] = False
    try:
        code = app(standalone_mode=False, prog_name="septool")
    except Terminated:
        console.print("terminated", highlight=False)
        sys.exit(143)
    except KeyboardInterrupt:
        code = 130
    except typer.Exit as exit_:
        code = exit_.exit_code
    except typer.Abort:
        code = 130
    except Exception as err:
        if debugging["on"] or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        _report(err)
    # click turns Ctrl-C into Exit(130), which outside standalone mode is returned, not raised
    if code == 130:
        console.print("interrupted", highlight=False)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":  # python -m septool.cli.app (torchrun -m septool.cli.app train ...)
    main()
