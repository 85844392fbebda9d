import errno
from pathlib import Path

import pytest
import torch
from conftest import tiny_model

from septool import SeptoolError
from septool.store import StoredEncoder, fingerprint, load_decoder, load_encoder, save_decoder, save_encoder


def test_encoder_and_decoder_round_trip(tmp_path):
    model = tiny_model(["vocals"])
    fp = save_encoder(tmp_path / "encoder.safetensors", model.encoder, "unet", provenance={"run": "test"})
    save_decoder(tmp_path / "vocals.safetensors", "vocals", model.decoders["vocals"], StoredEncoder(model.encoder, fp))
    encoder = load_encoder(tmp_path / "encoder.safetensors")
    assert encoder.fingerprint == fp
    assert encoder.metadata["provenance"] == {"run": "test"}
    assert encoder.metadata["stft"]["n_fft"] == 2048 and encoder.metadata["stft"]["hop"] == 512
    torch.testing.assert_close(encoder.encoder.bin_std, model.encoder.bin_std)
    decoder = load_decoder(tmp_path / "vocals.safetensors", encoder)
    assert decoder.name == "vocals" and decoder.encoder_fingerprint == fp
    x = torch.rand(1, 2, 1024, 129)
    with torch.no_grad():
        torch.testing.assert_close(decoder.decoder(encoder.encoder(x)), model.decoders["vocals"](model.encoder(x)))


def test_float16_storage_halves_the_file_and_keeps_outputs(tmp_path):
    model = tiny_model(["vocals"])
    save_encoder(tmp_path / "e32.safetensors", model.encoder, "unet")
    fp16 = save_encoder(tmp_path / "e16.safetensors", model.encoder, "unet", dtype=torch.float16)
    assert (tmp_path / "e16.safetensors").stat().st_size < 0.6 * (tmp_path / "e32.safetensors").stat().st_size
    assert load_encoder(tmp_path / "e16.safetensors").fingerprint == fp16


def test_decoder_against_another_encoder_is_refused_naming_both(tmp_path):
    first, second = tiny_model(["vocals"], seed=1), tiny_model(["vocals"], seed=2)
    fp1 = save_encoder(tmp_path / "one" / "encoder.safetensors", first.encoder, "unet")
    fp2 = save_encoder(tmp_path / "two" / "encoder.safetensors", second.encoder, "unet")
    save_decoder(
        tmp_path / "one" / "vocals.safetensors", "vocals", first.decoders["vocals"], StoredEncoder(first.encoder, fp1)
    )
    with pytest.raises(SeptoolError) as err:
        load_decoder(tmp_path / "one" / "vocals.safetensors", load_encoder(tmp_path / "two" / "encoder.safetensors"))
    message = str(err.value)
    assert fp1 in message and fp2 in message and "\n" not in message


def test_damaged_and_foreign_files_are_refused(tmp_path):
    model = tiny_model(["vocals"])
    path = tmp_path / "encoder.safetensors"
    save_encoder(path, model.encoder, "unet")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip bits inside the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(SeptoolError, match="damaged"):
        load_encoder(path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(SeptoolError, match="not a safetensors model file"):
        load_encoder(tmp_path / "junk.safetensors")
    fp = save_encoder(path, model.encoder, "unet")
    save_decoder(tmp_path / "v.safetensors", "vocals", model.decoders["vocals"], StoredEncoder(model.encoder, fp))
    with pytest.raises(SeptoolError, match="not an encoder"):
        load_encoder(tmp_path / "v.safetensors")


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    model = tiny_model(["vocals"])
    path = tmp_path / "encoder.safetensors"
    save_encoder(path, model.encoder, "unet")
    before = path.read_bytes()
    import septool.store as store

    def fail(tensors, filename, metadata=None):  # the disk fills half-way through the file
        Path(filename).write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "save_file", fail)
    with pytest.raises(SeptoolError, match="encoder.safetensors: cannot write .No space left on device"):
        save_encoder(path, tiny_model(["vocals"], seed=5).encoder, "unet")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.safetensors"]


def test_fingerprint_depends_on_values_names_and_dtype():
    a = {"w": torch.zeros(3)}
    assert fingerprint(a) == fingerprint({"w": torch.zeros(3)})
    assert fingerprint(a) != fingerprint({"w": torch.tensor([0.0, 0.0, 1.0])})
    assert fingerprint(a) != fingerprint({"v": torch.zeros(3)})
    assert fingerprint(a) != fingerprint({"w": torch.zeros(3, dtype=torch.float16)})
