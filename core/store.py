"""The model store: safetensors files for the encoder and for each decoder, with metadata.

An encoder file holds the encoder's weights, BatchNorm statistics and per-bin normalization,
and its fingerprint (a hash of those tensors). A decoder file names the fingerprint of the
encoder it was trained against; loading it against any other encoder is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from .errors import SeptoolError
from .files import atomic_path
from .network import STAGES, Decoder, Encoder
from .spectral import StftSettings

FORMAT_VERSION = "1"
ENCODER_FILE = "encoder.safetensors"


def packaged_encoder() -> Traversable:
    """Where the core package keeps its pretrained encoder."""
    return files("septool") / "pretrained" / ENCODER_FILE


def decoder_file(name: str) -> str:
    return f"{name}.safetensors"


def fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """A short hash of tensor names, dtypes, shapes and values."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class StoredEncoder:
    encoder: Encoder
    fingerprint: str
    metadata: dict = field(default_factory=dict)


@dataclass
class StoredDecoder:
    name: str
    decoder: Decoder
    encoder_fingerprint: str
    metadata: dict = field(default_factory=dict)


def _to_storage(module: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    state = {}
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu()
        state[name] = tensor.to(dtype).contiguous() if tensor.is_floating_point() else tensor.contiguous()
    return state


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write a safetensors file atomically (``files.atomic_path``)."""
    with atomic_path(path, errors=(SafetensorError,)) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return Path(path)


def _read(path: Path | Traversable) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SeptoolError(f"{path}: cannot read model file ({err.strerror or err})") from None
    try:
        tensors = load_bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        metadata = header.get("__metadata__", {}) if isinstance(header, dict) else None
    except (SafetensorError, ValueError, json.JSONDecodeError) as err:
        raise SeptoolError(f"{path}: not a safetensors model file ({err})") from None
    if not isinstance(metadata, dict):
        raise SeptoolError(f"{path}: not a septool model file (its header has no metadata)")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise SeptoolError(
            f"{path}: model format version {metadata.get('format_version')!r}, this septool reads {FORMAT_VERSION!r}"
        )
    return tensors, metadata


def copy_as_float16(source: Path | Traversable, target: Path) -> Path:
    """Copy a model file with its floating-point tensors stored in float16 (metadata kept): the
    form septool ships weights in. Decoders stay bound to their encoder (the binding is by the
    encoder's fingerprint, which this does not touch)."""
    tensors, metadata = _read(source)
    half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    return write_safetensors(Path(target), half, metadata)


def save_encoder(
    path: str | os.PathLike,
    encoder: Encoder,
    provenance: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> str:
    """Write the encoder atomically; return its fingerprint."""
    tensors = _to_storage(encoder, dtype)
    fp = fingerprint(tensors)
    metadata = {
        "format_version": FORMAT_VERSION,
        "kind": "encoder",
        "fingerprint": fp,
        "widths": json.dumps(list(encoder.widths)),
        "stft": json.dumps(StftSettings().to_dict()),
        "provenance": json.dumps(provenance or {}),
    }
    write_safetensors(Path(path), tensors, metadata)
    return fp


ENCODER_FIELDS = ("fingerprint", "widths", "stft", "provenance")
DECODER_FIELDS = ("source", "encoder_fingerprint", "encoder_widths", "widths", "provenance")


def _fields(path, metadata: dict[str, str], names: tuple[str, ...]) -> dict:
    """The metadata fields ``names``, JSON ones decoded; a missing or malformed one names the file and field."""
    missing = [n for n in names if n not in metadata]
    if missing:
        raise SeptoolError(f"{path}: damaged model file: its metadata has no {missing[0]!r} field")
    values = {}
    for name in names:
        if name not in _JSON_FIELDS:
            values[name] = metadata[name]
            continue
        try:
            values[name] = json.loads(metadata[name])
        except json.JSONDecodeError:
            raise SeptoolError(f"{path}: damaged model file: its {name!r} field is not valid JSON") from None
    for name in ("widths", "encoder_widths"):
        if name in values and not (
            isinstance(values[name], list)
            and len(values[name]) > STAGES
            and all(isinstance(w, int) and 0 < w <= 4096 for w in values[name])
        ):
            raise SeptoolError(f"{path}: damaged model file: {name} {values[name]!r} are not layer widths")
    return values


def _build(path, module_type, tensors: dict[str, torch.Tensor], *args) -> torch.nn.Module:
    """``module_type(*args)`` with ``tensors`` loaded, after checking every name and shape against it."""
    try:
        module = module_type(*args)
    except (TypeError, ValueError, RuntimeError, IndexError) as err:
        raise SeptoolError(f"{path}: damaged model file: cannot build its network ({err})") from None
    expected = module.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        which = f"no tensor {missing[0]!r}" if missing else f"an unknown tensor {unexpected[0]!r}"
        raise SeptoolError(f"{path}: damaged model file: it has {which}")
    for name, tensor in expected.items():
        if tuple(tensors[name].shape) != tuple(tensor.shape):
            raise SeptoolError(
                f"{path}: damaged model file: tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                f"its widths make it {tuple(tensor.shape)}"
            )
        if tensors[name].is_floating_point() and not torch.isfinite(tensors[name]).all():
            raise SeptoolError(f"{path}: damaged model file: tensor {name!r} holds NaN or infinite values")
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    return module.eval()


def load_encoder(path: str | os.PathLike | Traversable) -> StoredEncoder:
    """Load an encoder, checking its metadata, fingerprint, STFT settings and every tensor's shape."""
    path = Path(path) if isinstance(path, (str, os.PathLike)) else path
    tensors, metadata = _read(path)
    if metadata.get("kind") != "encoder":
        raise SeptoolError(f"{path}: is a {metadata.get('kind', 'unknown')} file, not an encoder")
    fields = _fields(path, metadata, ENCODER_FIELDS)
    fp = fingerprint(tensors)
    if fp != fields["fingerprint"]:
        raise SeptoolError(f"{path}: damaged: its tensors hash to {fp}, its header says {fields['fingerprint']}")
    if fields["stft"] != StftSettings().to_dict():
        raise SeptoolError(
            f"{path}: trained with STFT settings {metadata['stft']}, septool uses {StftSettings().to_dict()}"
        )
    first = tensors.get("first.0.weight")
    if first is None or first.dim() != 4:
        raise SeptoolError(f"{path}: damaged model file: it has no tensor 'first.0.weight'")
    encoder = _build(path, Encoder, tensors, fields["widths"], int(first.shape[1]))
    return StoredEncoder(encoder, fp, _decoded(metadata))


def save_decoder(
    path: str | os.PathLike,
    name: str,
    decoder: Decoder,
    encoder: StoredEncoder | str,
    encoder_widths: tuple[int, ...],
    provenance: dict | None = None,
    scores: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a decoder atomically, bound to the encoder (or encoder fingerprint) given."""
    encoder_fp = encoder if isinstance(encoder, str) else encoder.fingerprint
    metadata = {
        "format_version": FORMAT_VERSION,
        "kind": "decoder",
        "source": name,
        "encoder_fingerprint": encoder_fp,
        "encoder_widths": json.dumps(list(encoder_widths)),
        "widths": json.dumps(list(decoder.widths)),
        "provenance": json.dumps(provenance or {}),
        "scores": json.dumps(scores or {}),
    }
    return write_safetensors(Path(path), _to_storage(decoder, dtype), metadata)


def load_decoder(
    path: str | os.PathLike | Traversable, encoder: StoredEncoder, source: str | None = None
) -> StoredDecoder:
    """Load a decoder; refuse it unless it was trained against ``encoder`` (and is ``source``'s, if given)."""
    path = Path(path) if isinstance(path, (str, os.PathLike)) else path
    tensors, metadata = _read(path)
    if metadata.get("kind") != "decoder":
        raise SeptoolError(f"{path}: is a {metadata.get('kind', 'unknown')} file, not a decoder")
    fields = _fields(path, metadata, DECODER_FIELDS)
    if source is not None and fields["source"] != source:
        raise SeptoolError(f"{path}: holds the decoder of {fields['source']!r}, not of {source!r}")
    wanted = fields["encoder_fingerprint"]
    if wanted != encoder.fingerprint:
        raise SeptoolError(
            f"{path}: decoder '{fields['source']}' was trained against encoder {wanted}, "
            f"but the loaded encoder is {encoder.fingerprint}"
        )
    if list(fields["encoder_widths"]) != list(encoder.encoder.widths):
        raise SeptoolError(
            f"{path}: damaged model file: encoder_widths {fields['encoder_widths']} differ from its encoder's"
        )
    average = tensors.get("average.weight")
    if average is None or average.dim() != 4:
        raise SeptoolError(f"{path}: damaged model file: it has no tensor 'average.weight'")
    decoder = _build(path, Decoder, tensors, fields["encoder_widths"], fields["widths"], int(average.shape[0]))
    return StoredDecoder(fields["source"], decoder, wanted, _decoded(metadata))


_JSON_FIELDS = {"widths", "encoder_widths", "stft", "provenance", "scores"}


def _decoded(metadata: dict[str, str]) -> dict:
    return {k: json.loads(v) if k in _JSON_FIELDS else v for k, v in metadata.items()}
