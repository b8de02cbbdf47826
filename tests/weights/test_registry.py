import hashlib

import pytest

import weights
from landmarks.errors import WeightsError


def test_register_then_verify_round_trip(tmp_path):
    reg = tmp_path / "registry.json"
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"tensors")
    entry = weights.register("toy", f, kind="generator", licence="CC0", origin={"command": "x"}, registry_path=reg)
    assert entry.sha256 == hashlib.sha256(b"tensors").hexdigest()
    assert entry.size == 7
    loaded = weights.load_registry(reg)["toy"]
    assert loaded.sha256 == entry.sha256 and loaded.path == "model.safetensors"


def test_check_detects_tampering(tmp_path):
    reg = tmp_path / "registry.json"
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"tensors")
    entry = weights.register("toy", f, kind="generator", licence="CC0", origin={}, registry_path=reg)
    f.write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="corrupt or was replaced"):
        weights.check(entry)


def test_unknown_name_says_what_to_do():
    with pytest.raises(WeightsError, match="emoget weights list"):
        weights.get("no-such-weights")


def test_shipped_registry_matches_files():
    for entry in weights.load_registry().values():
        if not entry.url:
            weights.check(entry)
