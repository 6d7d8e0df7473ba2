"""utils.checkpoints on real torch files: RTVC layout, our layout, and every way a file can be wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from encoder.hparams import EncoderHParams
from encoder.model import SpeakerEncoder, build_speaker_encoder
from utils.checkpoints import (
    CheckpointError,
    load_checkpoint_file,
    load_model,
    make_payload,
    save_checkpoint,
)

SMALL = EncoderHParams(hidden_size=16, embedding_size=8, num_layers=1)
# Small CPU workloads: one torch thread is faster and immune to busy machines (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("torch_single_thread")


class NotWeights:
    """A custom class: pickling an instance of it puts arbitrary code references into a checkpoint."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def load_encoder(path: Path):
    return load_model(path, "encoder", EncoderHParams, build_speaker_encoder)


def rtvc_encoder_file(path: Path, hparams: EncoderHParams = EncoderHParams(), step: int = 1234) -> Path:
    """An encoder checkpoint the way RTVC's training writes it: no hyperparameters, Adam state included."""
    torch.manual_seed(0)
    model = SpeakerEncoder(hparams)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.loss(model(torch.rand(4, 20, hparams.mel_n_channels)).reshape(2, 2, -1)).backward()
    optimizer.step()
    torch.save({"step": step, "model_state": model.state_dict(), "optimizer_state": optimizer.state_dict()}, path)
    return path


def assert_one_sentence(error: pytest.ExceptionInfo, path: Path, *fragments: str) -> str:
    message = str(error.value)
    assert "\n" not in message and "\x1b" not in message, message
    assert str(path) in message, message
    assert "Traceback" not in message and "size mismatch for" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------------------------------
# Files that are not checkpoints
# --------------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "encoder.pt"
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    assert_one_sentence(error, path, "does not exist")


def test_empty_file(tmp_path):
    path = tmp_path / "encoder.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    assert_one_sentence(error, path, "empty")


def test_folder(tmp_path):
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_file(tmp_path, "encoder")
    assert_one_sentence(error, tmp_path, "folder")


def test_truncated_file(tmp_path):
    whole = rtvc_encoder_file(tmp_path / "whole.pt").read_bytes()
    path = tmp_path / "encoder.pt"
    path.write_bytes(whole[: len(whole) // 2])  # an interrupted download
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    message = assert_one_sentence(error, path, "truncated")
    assert f"{len(whole) // 2:,} bytes" in message and len(message) < 400


def test_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "encoder.pt"
    path.write_text("<html>404 Not Found</html>\n")  # what a broken mirror serves
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    assert_one_sentence(error, path, "not a PyTorch checkpoint")


def test_pickled_python_object_is_refused_for_safety(tmp_path):
    path = tmp_path / "encoder.pt"
    torch.save({"model_state": SpeakerEncoder(SMALL).state_dict(), "extra": NotWeights()}, path)
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    message = assert_one_sentence(error, path, "not plain weights", "NotWeights")
    assert "truncated" not in message  # the file is fine; it is just not safe to unpickle


def test_checkpoint_that_is_not_a_dict(tmp_path):
    path = tmp_path / "encoder.pt"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    assert_one_sentence(error, path, "list")


def test_dict_without_model_state(tmp_path):
    path = tmp_path / "encoder.pt"
    torch.save({"optimizer_state": {}, "epoch": 3}, path)
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    assert_one_sentence(error, path, "model_state", "epoch")


# --------------------------------------------------------------------------------------------------
# Checkpoints of the wrong model
# --------------------------------------------------------------------------------------------------
def test_vocoder_file_loaded_as_encoder(tmp_path):
    path = tmp_path / "vocoder.pt"
    state = {"upsample.resnet.conv_in.weight": torch.zeros(128, 80, 5), "I.weight": torch.zeros(512, 113)}
    torch.save({"model_state": state, "optimizer_state": {}}, path)
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    assert_one_sentence(error, path, "is a vocoder checkpoint, not an encoder checkpoint")


def test_other_hidden_size_lists_first_difference(tmp_path):
    path = rtvc_encoder_file(tmp_path / "encoder.pt", EncoderHParams(hidden_size=128))
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    message = assert_one_sentence(error, path, "does not fit this encoder")
    assert "lstm.weight_ih_l0 is (512, 40) in the file but (1024, 40) in the model" in message
    assert "13 shape(s) differ" in message  # 12 LSTM tensors + linear.weight


def test_missing_and_unexpected_keys_are_counted(tmp_path):
    state = SpeakerEncoder(EncoderHParams()).state_dict()
    state["lstm.weight_ih_l3"] = state.pop("lstm.weight_ih_l2")
    path = tmp_path / "encoder.pt"
    torch.save({"model_state": state}, path)
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    assert_one_sentence(error, path, "1 key(s) are missing (lstm.weight_ih_l2)",
                        "1 unexpected key(s) (lstm.weight_ih_l3)")


def test_our_file_of_another_model_type(tmp_path):
    path = tmp_path / "encoder.pt"
    payload = make_payload(SpeakerEncoder(SMALL), "vocoder", SMALL)
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    assert_one_sentence(error, path, "vocoder checkpoint, not an encoder")


def test_our_file_with_unknown_hparams(tmp_path):
    path = tmp_path / "encoder.pt"
    payload = make_payload(SpeakerEncoder(SMALL), "encoder", SMALL)
    payload["hparams"]["attention_heads"] = 4  # written by a newer version
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError) as error:
        load_encoder(path)
    assert_one_sentence(error, path, "attention_heads")


# --------------------------------------------------------------------------------------------------
# Good files
# --------------------------------------------------------------------------------------------------
def test_rtvc_layout_loads_with_default_hparams(tmp_path):
    path = rtvc_encoder_file(tmp_path / "encoder.pt", step=77)
    model, hparams, checkpoint = load_encoder(path)
    assert hparams == EncoderHParams() and checkpoint["step"] == 77 and "optimizer_state" in checkpoint
    assert not model.training
    expected = torch.load(path, weights_only=True)["model_state"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_our_layout_round_trips_hparams_and_weights(tmp_path):
    hparams = EncoderHParams(hidden_size=24, embedding_size=12, num_layers=2)
    torch.manual_seed(1)
    model = SpeakerEncoder(hparams)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "run" / "encoder.pt"  # the folder is created
    save_checkpoint(path, make_payload(model, "encoder", hparams, optimizer, step=5))

    loaded, loaded_hparams, checkpoint = load_encoder(path)
    assert loaded_hparams == hparams and isinstance(loaded_hparams.hidden_size, int)
    assert checkpoint["model_type"] == "encoder" and checkpoint["step"] == 5
    assert checkpoint["format_version"] == 1 and "optimizer_state" in checkpoint
    frames = torch.rand(2, 30, 40)
    with torch.no_grad():
        assert torch.equal(loaded(frames), model.eval()(frames))
    # RTVC reads only model_state: it must be a plain state_dict that fits the same architecture.
    raw = torch.load(path, weights_only=True)
    SpeakerEncoder(hparams).load_state_dict(raw["model_state"])


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "encoder.pt"
    save_checkpoint(path, make_payload(SpeakerEncoder(SMALL), "encoder", SMALL, step=1))
    first_inode = path.stat().st_ino
    save_checkpoint(path, make_payload(SpeakerEncoder(SMALL), "encoder", SMALL, step=2))
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.pt"]
    assert path.stat().st_ino != first_inode  # replaced by rename, never rewritten in place
    assert load_checkpoint_file(path, "encoder")["step"] == 2
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_save_keeps_the_old_file(tmp_path):
    path = tmp_path / "encoder.pt"
    save_checkpoint(path, make_payload(SpeakerEncoder(SMALL), "encoder", SMALL, step=1))
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(path, {"model_state": {}, "bad": lambda: None})  # lambdas cannot be pickled
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.pt"]


def test_save_checkpoint_on_a_full_disk_keeps_the_previous_file(full_disk):
    import torch

    from utils.checkpoints import CheckpointError, save_checkpoint

    target = full_disk / "model.pt"
    target.write_bytes(b"previous")
    with pytest.raises(CheckpointError, match="disk space"):
        save_checkpoint(target, {"model_state": torch.nn.Linear(64, 64).state_dict()})
    assert target.read_bytes() == b"previous"
    assert sorted(path.name for path in full_disk.iterdir()) == ["filler.bin", "model.pt"]


@pytest.mark.parametrize("content", [b"hello, this is not a checkpoint\n", b"\x80\x02]q\x00", bytes(range(256)) * 3,
                                     b"x", b"\x80\x48garbage"])
def test_junk_files_give_a_checkpoint_error_not_a_traceback(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint_file(path, "encoder")


# ----------------------------------------------------------------------------------------------
# Issue 18: write failures, damaged bytes, values that are not tensors, huge stored hyperparameters.


def test_zip_writer_failure_on_a_full_disk_is_one_checkpoint_error(full_disk):
    # Large enough that torch's zip writer itself hits the full disk: it raises RuntimeError
    # ("... unexpected pos ..."), which save_checkpoint used to let through with two tracebacks.
    target = full_disk / "model.pt"
    with pytest.raises(CheckpointError, match=r"^Not enough disk space to write the checkpoint .*model\.pt") as caught:
        save_checkpoint(target, {"model_state": {"w": torch.zeros(200_000)}})
    assert "\n" not in str(caught.value)
    assert sorted(path.name for path in full_disk.iterdir()) == ["filler.bin"]  # no temporary left


def test_writing_onto_a_folder_or_a_read_only_place_is_one_checkpoint_error(tmp_path, read_only_dir):
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(CheckpointError, match="existing folder"):
        save_checkpoint(tmp_path / "folder.pt", {"model_state": {}})
    with pytest.raises(CheckpointError, match=r"Cannot write the checkpoint .*Read-only file system"):
        save_checkpoint(read_only_dir / "model.pt", {"model_state": {}})


def _flip_until(data: bytes, exception: type[BaseException]) -> bytes:
    """``data`` with the first single-bit flip that makes ``torch.load`` raise ``exception``."""
    import io
    import warnings

    for index in range(len(data)):
        damaged = bytearray(data)
        damaged[index] ^= 0x01
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.load(io.BytesIO(bytes(damaged)), weights_only=True)
        except exception:
            return bytes(damaged)
        except Exception:  # noqa: BLE001 - another kind of damage: keep looking
            continue
    pytest.skip(f"no single-bit flip gives {exception.__name__} with this torch version")


def test_one_corrupted_byte_giving_assertion_error_is_a_checkpoint_error(tmp_path):
    # RTVC's legacy (non-zip) format: a flipped digit in a storage key makes torch.load assert
    # "storage key ... not found", which escaped as "unexpected AssertionError".
    import io

    buffer = io.BytesIO()
    torch.save({"model_state": torch.nn.Linear(3, 2).state_dict(), "optimizer_state": {}}, buffer,
               _use_new_zipfile_serialization=False)
    path = tmp_path / "encoder.pt"
    path.write_bytes(_flip_until(buffer.getvalue(), AssertionError))
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch checkpoint"):
        load_checkpoint_file(path, "encoder")


@pytest.mark.parametrize("value", ["text", 3, [1.0, 2.0]])
def test_state_values_that_are_not_tensors_are_a_checkpoint_error(tmp_path, value):
    state = build_speaker_encoder(SMALL).state_dict()
    state["lstm.weight_ih_l0"] = value
    path = tmp_path / "encoder.pt"
    torch.save(make_payload_dict(state), path)
    with pytest.raises(CheckpointError, match=r"is damaged: its weight 'lstm.weight_ih_l0' is an? \w+, not a tensor"):
        load_model(path, "encoder", EncoderHParams, build_speaker_encoder)


def make_payload_dict(state: dict) -> dict:
    return {"model_state": state, "model_type": "encoder", "format_version": 1, "hparams": SMALL.to_dict()}


def test_shapes_are_compared_before_a_large_model_is_built(tmp_path):
    # A few-KB file whose stored hyperparameters describe a large model: the mismatch must be found
    # from the file's shapes, before the model is allocated (bits=24 allocated 2.6 GB in the CLI).
    from vocoder.hparams import VocoderHParams
    from vocoder.model import build_wavernn

    tiny = VocoderHParams(voc_rnn_dims=8, voc_fc_dims=8, voc_compute_dims=8, voc_res_out_dims=8, voc_res_blocks=1)
    state = build_wavernn(tiny).state_dict()
    huge = tiny.replace(bits=16, voc_rnn_dims=2048, voc_fc_dims=2048)
    path = tmp_path / "vocoder.pt"
    torch.save({"model_state": state, "model_type": "vocoder", "format_version": 1, "hparams": huge.to_dict()}, path)
    assert path.stat().st_size < 100_000
    devices = []

    def build(hparams):
        devices.append(torch.empty(0).device.type)  # where the builder allocates
        return build_wavernn(hparams)

    with pytest.raises(CheckpointError, match="does not fit this vocoder"):
        load_model(path, "vocoder", VocoderHParams, build)
    assert devices == ["meta"]  # built only as a shape skeleton, never for real


def test_a_checkpoint_with_a_sha256_beside_it_is_checked_at_every_load(tmp_path):
    """Issue 26 (the shipped files keep one): a changed file is refused in one line, an intact one loads."""
    from utils.checkpoints import CheckpointError, load_checkpoint_file, save_checkpoint, write_checksum

    path = tmp_path / "model.pt"
    save_checkpoint(path, {"model_state": torch.nn.Linear(4, 4).state_dict()})
    write_checksum(path)
    assert sorted(load_checkpoint_file(path, "model")) == ["model_state"]
    save_checkpoint(path, {"model_state": torch.nn.Linear(4, 4).state_dict()})  # other weights, same size
    with pytest.raises(CheckpointError, match="does not match the SHA-256 in 'model.pt.sha256'") as info:
        load_checkpoint_file(path, "model")
    assert "\n" not in str(info.value)
    write_checksum(path)
    load_checkpoint_file(path, "model")
