"""Crafted model folders: every metadata field and tensor of a valid tiny model, deleted or damaged in turn."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import septool
from septool import SeptoolError
from septool.store import ENCODER_FILE, decoder_file


def read(path):
    with safe_open(str(path), "pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata())


def crafted(tiny_model_dir, tmp_path, file, tensors=None, metadata=None):
    folder = tmp_path / "crafted"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(tiny_model_dir, folder)
    original_tensors, original_metadata = read(folder / file)
    save_file(tensors if tensors is not None else original_tensors, folder / file,
              metadata=metadata if metadata is not None else original_metadata)  # fmt: skip
    return folder


def refused(folder, file, sources=None):
    with pytest.raises(SeptoolError) as err:
        septool.load_model(folder, sources=sources)
    message = str(err.value)
    assert str(folder / file) in message and "\n" not in message
    return message


@pytest.mark.parametrize("file", [ENCODER_FILE, decoder_file("vocals")])
def test_every_metadata_field_deleted_or_garbled_is_refused_naming_the_file(file, tiny_model_dir, tmp_path):
    tensors, metadata = read(tiny_model_dir / file)
    for field in sorted(set(metadata) - {"scores"}):  # scores are informative only
        folder = crafted(tiny_model_dir, tmp_path, file, metadata={k: v for k, v in metadata.items() if k != field})
        refused(folder, file)
        if field in ("config", "encoder_config", "stft", "provenance"):
            folder = crafted(tiny_model_dir, tmp_path, file, metadata=metadata | {field: "{not json"})
            assert field in refused(folder, file)
    for widths in ([8, 8], [8, 8, 8, 8, 8, 10**9]):  # too few layers; a layer that would take all memory
        config = json.loads(metadata["config"]) | {"widths": widths}
        folder = crafted(tiny_model_dir, tmp_path, file, metadata=metadata | {"config": json.dumps(config)})
        assert "widths" in refused(folder, file)
    folder = crafted(tiny_model_dir, tmp_path, file, metadata=metadata | {"backbone": "nosuch"})
    assert "backbone 'nosuch'" in refused(folder, file)


@pytest.mark.parametrize("file", [ENCODER_FILE, decoder_file("vocals")])
def test_every_tensor_deleted_reshaped_or_poisoned_is_refused(file, tiny_model_dir, tmp_path):
    tensors, metadata = read(tiny_model_dir / file)
    floating = [name for name, t in tensors.items() if t.is_floating_point()]
    for index, name in enumerate(sorted(tensors)):
        change = ("delete", "reshape", "poison")[index % 3]
        if change == "poison" and name not in floating:
            change = "delete"
        damaged = dict(tensors)
        if change == "delete":
            del damaged[name]
        elif change == "reshape":
            damaged[name] = torch.cat([tensors[name].reshape(-1), tensors[name].reshape(-1)[:1]])
        else:
            damaged[name] = tensors[name].clone()
            damaged[name].reshape(-1)[0] = float("nan")
        if file == ENCODER_FILE:  # keep the fingerprint in step, so the shape check itself is what refuses
            from septool.store import fingerprint

            metadata = metadata | {"fingerprint": fingerprint(damaged)}
        folder = crafted(tiny_model_dir, tmp_path, file, tensors=damaged, metadata=metadata)
        message = refused(folder, file)
        assert name in message or change == "delete" and "no tensor" in message, (name, change, message)


def test_a_decoder_file_holding_another_source_is_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "swapped"
    shutil.copytree(tiny_model_dir, folder)
    shutil.copyfile(folder / decoder_file("vocals"), folder / decoder_file("drums"))
    message = refused(folder, decoder_file("drums"))
    assert "holds the decoder of 'vocals', not of 'drums'" in message


def test_a_broken_decoder_in_the_model_folder_fails_the_run_instead_of_a_missing_stem(tiny_model_dir, tmp_path, song,
                                                                                      cli):  # fmt: skip
    folder = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, folder)
    (folder / decoder_file("bass")).write_bytes(b"\x00" * 64)
    out_dir = tmp_path / "out"
    code, out, err = cli("separate", song, "--model", folder, "-o", out_dir)
    assert code == 1 and "bass.safetensors" in err and "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.rglob("*.wav"))


def test_non_finite_estimates_are_refused_before_anything_is_written(tiny_model_dir, tmp_path, song):
    loaded = septool.load_model(tiny_model_dir)
    with torch.no_grad():
        next(iter(loaded.model.decoders["drums"].parameters())).fill_(float("inf"))
    out_dir = tmp_path / "out"
    with pytest.raises(SeptoolError, match="drums decoder produced NaN or infinite samples"):
        septool.separate(song, out_dir=out_dir, model=loaded)
    assert not any(out_dir.rglob("*")) if out_dir.exists() else True
