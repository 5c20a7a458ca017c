"""Atomic writes and the clean-up of what a killed writer leaves behind."""

from __future__ import annotations

import torch
from ignite.engine import Engine

from scripts.atomic_io import atomic_write_text, remove_stale_temporaries
from scripts.engines import TrainingCheckpoint


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "note.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in target.parent.iterdir()] == ["note.txt"]


def test_training_checkpoint_removes_temporaries_of_an_interrupted_write(tmp_path):
    last = tmp_path / "checkpoints" / "last.pt"
    last.parent.mkdir()
    stale = last.parent / ".last.pt.abc123.tmp"  # what a SIGKILL during atomic_torch_save leaves
    stale.write_bytes(b"half a checkpoint")
    unrelated = last.parent / "notes.tmp"
    unrelated.write_text("keep")
    model = torch.nn.Linear(2, 2)
    TrainingCheckpoint(last, {"model": model}).attach(Engine(lambda e, b: None))
    assert not stale.exists() and unrelated.exists()
    assert remove_stale_temporaries(last) == []
