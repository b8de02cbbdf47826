import os

import pytest

# Tests must never reach the network, and stay fast on a 2-core machine.
os.environ.setdefault("EMOGET_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture
def samples_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "samples"
