"""The model store: safetensors files for the encoder and for each decoder, with metadata.

An encoder file holds the encoder's weights, BatchNorm statistics and per-bin normalization, its
backbone's name and config (what rebuilds the network) and its fingerprint (a hash of the
tensors). A decoder file names its backbone, its config, and the fingerprint and config of the
encoder it was trained against; loading it against any other encoder is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from .backbones import DEFAULT_BACKBONE, canonical
from .errors import SeptoolError
from .files import atomic_path
from .frontend import PAPER_STFT, StftSettings

if TYPE_CHECKING:
    from .plugin_manager import Registry

FORMAT_VERSION = "2"  # "1": before backbones; its files are the unet's and still load
READABLE_VERSIONS = ("1", FORMAT_VERSION)
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
    encoder: Any  # a backbone's encoder module: config, bin_std, normalize (backbones.py)
    fingerprint: str
    backbone: str = DEFAULT_BACKBONE
    metadata: dict = field(default_factory=dict)
    stft: StftSettings = PAPER_STFT  # the backbone's front end, as the file records it


@dataclass
class StoredDecoder:
    name: str
    decoder: torch.nn.Module
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
    if metadata.get("format_version") not in READABLE_VERSIONS:
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
    encoder: torch.nn.Module,
    backbone: str,
    provenance: dict | None = None,
    dtype: torch.dtype = torch.float32,
    reg: Registry | None = None,
) -> str:
    """Write the encoder (of backbone ``backbone``, whose front end the file records) atomically;
    return its fingerprint."""
    stft = _registry(reg).backbone(backbone).stft
    tensors = _to_storage(encoder, dtype)
    fp = fingerprint(tensors)
    metadata = {
        "format_version": FORMAT_VERSION,
        "kind": "encoder",
        "fingerprint": fp,
        "backbone": backbone,
        "config": json.dumps(encoder.config),
        "stft": json.dumps(stft.to_dict()),
        "provenance": json.dumps(provenance or {}),
    }
    write_safetensors(Path(path), tensors, metadata)
    return fp


ENCODER_FIELDS = ("fingerprint", "backbone", "config", "stft", "provenance")
DECODER_FIELDS = ("source", "backbone", "encoder_fingerprint", "encoder_config", "config", "provenance")
_JSON_FIELDS = {"config", "encoder_config", "widths", "encoder_widths", "stft", "provenance", "scores"}


def _upgraded(metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """A format-1 file's metadata in today's fields: format 1 knew one backbone, the unet, by its widths."""
    if metadata.get("format_version") != "1":
        return metadata
    metadata = dict(metadata, backbone=DEFAULT_BACKBONE)
    if metadata.get("kind") == "encoder" and "widths" in metadata:
        first = tensors.get("first.0.weight")
        channels = int(first.shape[1]) if first is not None and first.dim() == 4 else 2
        metadata["config"] = json.dumps({"widths": _json(metadata["widths"]), "channels": channels})
    if metadata.get("kind") == "decoder" and "widths" in metadata and "encoder_widths" in metadata:
        average = tensors.get("average.weight")
        channels = int(average.shape[0]) if average is not None and average.dim() == 4 else 2
        metadata["config"] = json.dumps({"widths": _json(metadata["widths"])})
        metadata["encoder_config"] = json.dumps({"widths": _json(metadata["encoder_widths"]), "channels": channels})
    return metadata


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # reported as not valid JSON by _fields, once it is re-encoded


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
    for name in ("config", "encoder_config"):
        if name in values and not isinstance(values[name], dict):
            raise SeptoolError(f"{path}: damaged model file: its {name!r} field is not a config")
    return values


def _build(path, build, tensors: dict[str, torch.Tensor], *configs: dict) -> torch.nn.Module:
    """``build(*configs)`` with ``tensors`` loaded, after checking every name and shape against it."""
    try:
        module = build(*configs)
    except (TypeError, ValueError, RuntimeError, IndexError, KeyError, AttributeError) as err:
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
                f"its config makes it {tuple(tensor.shape)}"
            )
        if tensors[name].is_floating_point() and not torch.isfinite(tensors[name]).all():
            raise SeptoolError(f"{path}: damaged model file: tensor {name!r} holds NaN or infinite values")
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    return module.eval()


def _registry(reg: Registry | None) -> Registry:
    from .plugin_manager import registry

    return reg or registry()


def load_encoder(path: str | os.PathLike | Traversable, reg: Registry | None = None) -> StoredEncoder:
    """Load an encoder, checking its metadata, fingerprint, STFT settings and every tensor's shape.

    Its backbone must be registered (``reg``: the plugins' registry, loaded if not given)."""
    path = Path(path) if isinstance(path, (str, os.PathLike)) else path
    tensors, metadata = _read(path)
    if metadata.get("kind") != "encoder":
        raise SeptoolError(f"{path}: is a {metadata.get('kind', 'unknown')} file, not an encoder")
    fields = _fields(path, _upgraded(metadata, tensors), ENCODER_FIELDS)
    fp = fingerprint(tensors)
    if fp != fields["fingerprint"]:
        raise SeptoolError(f"{path}: damaged: its tensors hash to {fp}, its header says {fields['fingerprint']}")
    try:
        spec = _registry(reg).backbone(fields["backbone"])
    except SeptoolError as err:
        raise SeptoolError(f"{path}: {err}") from None
    if fields["stft"] != spec.stft.to_dict():
        raise SeptoolError(
            f"{path}: trained with STFT settings {metadata['stft']}, backbone {spec.name!r} reads "
            f"{json.dumps(spec.stft.to_dict())}"
        )
    encoder = _build(path, spec.build_encoder, tensors, fields["config"])
    return StoredEncoder(encoder, fp, spec.name, _decoded(metadata), spec.stft)


def save_decoder(
    path: str | os.PathLike,
    name: str,
    decoder: torch.nn.Module,
    encoder: StoredEncoder,
    provenance: dict | None = None,
    scores: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a decoder atomically, bound to ``encoder`` (its backbone, fingerprint and config)."""
    metadata = {
        "format_version": FORMAT_VERSION,
        "kind": "decoder",
        "source": name,
        "backbone": encoder.backbone,
        "encoder_fingerprint": encoder.fingerprint,
        "encoder_config": json.dumps(encoder.encoder.config),
        "config": json.dumps(decoder.config),
        "provenance": json.dumps(provenance or {}),
        "scores": json.dumps(scores or {}),
    }
    return write_safetensors(Path(path), _to_storage(decoder, dtype), metadata)


def save_model(
    folder: str | os.PathLike,
    backbone: str,
    encoder: torch.nn.Module,
    decoders: Mapping[str, torch.nn.Module],
    provenance: dict | None = None,
    dtype: torch.dtype = torch.float32,
    reg: Registry | None = None,
) -> StoredEncoder:
    """Write a model directory: the encoder and one file per decoder, bound to it."""
    folder = Path(folder)
    reg = _registry(reg)
    fp = save_encoder(folder / ENCODER_FILE, encoder, backbone, provenance, dtype, reg)
    stored = StoredEncoder(encoder, fp, backbone, stft=reg.backbone(backbone).stft)
    for name, decoder in decoders.items():
        save_decoder(folder / decoder_file(name), name, decoder, stored, provenance, dtype=dtype)
    return stored


def load_decoder(
    path: str | os.PathLike | Traversable,
    encoder: StoredEncoder,
    source: str | None = None,
    reg: Registry | None = None,
) -> StoredDecoder:
    """Load a decoder; refuse it unless it was trained against ``encoder`` (and is ``source``'s, if given)."""
    path = Path(path) if isinstance(path, (str, os.PathLike)) else path
    tensors, metadata = _read(path)
    if metadata.get("kind") != "decoder":
        raise SeptoolError(f"{path}: is a {metadata.get('kind', 'unknown')} file, not a decoder")
    fields = _fields(path, _upgraded(metadata, tensors), DECODER_FIELDS)
    if source is not None and fields["source"] != source:
        raise SeptoolError(f"{path}: holds the decoder of {fields['source']!r}, not of {source!r}")
    if fields["backbone"] != encoder.backbone:
        raise SeptoolError(
            f"{path}: decoder '{fields['source']}' is of backbone {fields['backbone']!r}, "
            f"the loaded encoder of backbone {encoder.backbone!r}"
        )
    wanted = fields["encoder_fingerprint"]
    if wanted != encoder.fingerprint:
        raise SeptoolError(
            f"{path}: decoder '{fields['source']}' was trained against encoder {wanted}, "
            f"but the loaded encoder is {encoder.fingerprint}"
        )
    if fields["encoder_config"] != canonical(encoder.encoder.config):
        raise SeptoolError(
            f"{path}: damaged model file: its encoder config {fields['encoder_config']} differs from its encoder's"
        )
    spec = _registry(reg).backbone(encoder.backbone)
    decoder = _build(path, spec.build_decoder, tensors, fields["encoder_config"], fields["config"])
    return StoredDecoder(fields["source"], decoder, wanted, _decoded(metadata))


def _decoded(metadata: dict[str, str]) -> dict:
    return {k: _json(v) if k in _JSON_FIELDS else v for k, v in metadata.items()}
