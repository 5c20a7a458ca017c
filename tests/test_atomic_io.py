"""Atomic writes and the clean-up of what a killed writer leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from scripts.atomic_io import atomic_write, atomic_write_text, remove_stale_temporaries
from scripts.engines import TrainingCheckpoint

REPO = Path(__file__).resolve().parents[1]


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


# ------------------------------------------------------------------ writes cut short
# A child process writes over an existing file with the file-size limit (RLIMIT_FSIZE) set just above the
# old file's size: the write fails with EFBIG after its first bytes, a real mid-write failure of the
# product's writers. An in-place writer would leave a truncated target; the atomic one leaves the old file.
CUT_SHORT = r"""
import errno, json, resource, signal, sys
from pathlib import Path
writer, target, limit = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
big = ["token%05d" % i for i in range(4000)]
# imports first: loading libraries (cuCIM's cuFile writes its log at start-up) is not the write under test
import torch
from scripts.atomic_io import atomic_torch_save, atomic_write_json
from scripts.text import Vocabulary
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:
    if writer == "vocabulary":
        Vocabulary(big + ["<unk>"]).save(target)
    elif writer == "json":
        atomic_write_json(target, {"tokens": big})
    elif writer == "torch":
        atomic_torch_save(target, {"w": torch.arange(100000, dtype=torch.float32)})
except OSError as err:
    print("failed", errno.errorcode.get(err.errno, err.errno))
    sys.exit(0)
except RuntimeError as err:  # torch.save reports the failed write as a RuntimeError
    print("failed", str(err).splitlines()[0])
    sys.exit(0)
print("the write did not fail")
sys.exit(1)
"""


def _old_file(folder, writer: str):
    from scripts.text import Vocabulary

    target = folder / {"vocabulary": "vocab.json", "json": "best.json", "torch": "last.pt"}[writer]
    if writer == "vocabulary":
        Vocabulary(["a", "b", "<unk>"]).save(target)
    elif writer == "json":
        atomic_write_text(target, '{"tokens": ["old"]}\n')
    else:
        torch.save({"w": torch.ones(3)}, target)
    return target


@pytest.mark.parametrize("writer", ["vocabulary", "json", "torch"])
def test_a_write_that_fails_after_its_first_bytes_keeps_the_old_file_whole(tmp_path, writer):
    target = _old_file(tmp_path, writer)
    before = target.read_bytes()
    limit = len(before) + 512  # the new content is far larger: the write fails part-way through
    proc = subprocess.run([sys.executable, "-c", CUT_SHORT, writer, str(target), str(limit)], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "failed" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert target.read_bytes() == before, "the target was changed by a write that failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name], "a partial or temporary file was left"


def test_an_exception_after_the_first_bytes_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "reports.csv"
    atomic_write_text(target, "id,report\nold,kept\n")

    def half_then_fail(handle):
        handle.write("id,report\nnew,")
        handle.flush()
        assert any(p.stat().st_size > 0 for p in tmp_path.glob(".reports.csv.*.tmp")), "bytes reached the disk"
        raise RuntimeError("disk pulled out")

    with pytest.raises(RuntimeError, match="disk pulled out"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "id,report\nold,kept\n"
    assert [p.name for p in tmp_path.iterdir()] == ["reports.csv"]


KILLED_MID_WRITE = r"""
import sys, time
from scripts.atomic_io import atomic_write
def slow(handle):
    handle.write("new " * 100000)
    handle.flush()
    print("half written", flush=True)
    time.sleep(60)
    handle.write("end")
atomic_write(sys.argv[1], slow)
"""


def test_a_writer_killed_mid_write_leaves_the_old_file_and_a_removable_temporary(tmp_path):
    target = tmp_path / "model_config.json"
    atomic_write_text(target, '{"d_model": 512}\n')
    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(target)], cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "half written"
        (partial,) = tmp_path.glob(".model_config.json.*.tmp")
        assert partial.stat().st_size == len("new " * 100000)
        assert target.read_text() == '{"d_model": 512}\n', "the target changed before the write finished"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert target.read_text() == '{"d_model": 512}\n'
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["model_config.json"]
    assert remove_stale_temporaries(target) == [partial] and not partial.exists()
