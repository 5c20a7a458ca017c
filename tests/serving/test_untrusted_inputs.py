"""Files, ids, archives and requests from outside: nothing runs, nothing escapes, nothing is left behind.

Every loader of a file a user or a colleague can hand us is given a crafted pickle whose unpickling would
write a marker file; the load must be refused with a message that names the file, and the marker must not
exist. Ids that would name files outside the output folder, served ``feature_file`` paths, slide folders
with broken entries and zip bombs are tried the same way, on real files.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from ignite.engine import Engine

from scripts.data import read_feature_file
from scripts.encoders.checkpoint_files import read_state_dict
from scripts.engines import TrainingCheckpoint, load_report_model, save_report_model
from scripts.ids import UnsafeIdError, check_file_id, fold_dir_name, output_file
from scripts.networks import HistGen, HistGenConfig
from scripts.networks.reference_checkpoint import read_reference_checkpoint
from scripts.packaging import (
    CHECKSUM_FILE,
    ArchiveMemberTooLargeError,
    ArchiveTooLargeError,
    ChecksumError,
    CompressionRatioError,
    ExtractLimits,
    MissingChecksumsError,
    TooManyMembersError,
    safe_extract,
)
from scripts.packaging.checksums import format_checksums, sha256_bytes
from scripts.safe_load import UnsafeFileError, load_plain
from scripts.serving.feature_paths import FEATURE_ROOT_ENV, FeatureFileNotAllowedError, resolve_feature_file
from scripts.serving.report_predictor import ReportPredictor
from scripts.serving.transfer_predictor import FoldEnsemblePredictor
from scripts.text import Vocabulary
from scripts.transfer import build_mil_network, load_pretrained_encoder
from scripts.transfer.fold_models import load_fold_weights, save_fold_model
from scripts.wsi import read_manifest
from scripts.wsi.slide_sources import list_slides, slide_path_problem
from tests.support.shared_fixtures import HISTGEN_SMALL, require_histgen_small

REPO = Path(__file__).resolve().parents[2]
SMALL = {"d_vf": 24, "d_model": 16, "d_ff": 32, "num_heads": 2, "topk": 4, "cmm_size": 8, "cmm_dim": 16,
         "region_size": 5, "prototype_num": 3, "num_layers": 1}
TOKENS = ["tumour", "normal", "cells", "a", "b", "c", "<unk>"]


class RunsCode:
    """Unpickling this calls ``exec``, which writes ``marker``: what a hostile checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def _small_report_model(folder: Path, in_dim: int = 12) -> Path:
    torch.manual_seed(0)
    model = HistGen(HistGenConfig(in_dim=in_dim, vocab_size=len(TOKENS), **SMALL))
    return save_report_model(folder, model, Vocabulary(TOKENS))


# ------------------------------------------------------------------ every loader, one crafted file each
def _resume_checkpoint(tmp: Path, payload: Any) -> Callable[[], Any]:
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters())
    path = tmp / "run" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model": {"weight": payload, "bias": torch.zeros(2)}, "optimizer": optimizer.state_dict(),
                "trainer": {"epoch": 1, "iteration": 4}}, path)
    handler = TrainingCheckpoint(path, {"model": net, "optimizer": optimizer})
    engine = Engine(lambda e, b: None)
    engine.state.max_epochs = 3
    return lambda: handler.load(engine)


def _model_pt(tmp: Path, payload: Any) -> Callable[[], Any]:
    path = _small_report_model(tmp / "models")
    torch.save({"encoder.projection.weight": payload}, path)
    return lambda: load_report_model(path.parent)


def _served_report_model(tmp: Path, payload: Any) -> Callable[[], Any]:
    """What the MLflow pyfunc's ``load_context`` does with the logged ``model_dir`` artifact."""
    path = _small_report_model(tmp / "artifacts" / "model_dir")
    torch.save([payload], path)
    return lambda: ReportPredictor(path.parent, device="cpu")


def _encoder_weights(tmp: Path, payload: Any) -> Callable[[], Any]:
    path = tmp / "uni.bin"
    torch.save({"model": {"patch_embed.proj.weight": payload}}, path)
    return lambda: read_state_dict(path, encoder="uni")


def _pretrained_encoder(tmp: Path, payload: Any) -> Callable[[], Any]:
    path = _small_report_model(tmp / "report" / "models")
    network = build_mil_network("histgen", 12, 2, histgen={**SMALL, "vocab_size": len(TOKENS)})
    torch.save({"encoder.projection.weight": payload}, path)
    return lambda: load_pretrained_encoder(network, path)


def _fold_model(tmp: Path, payload: Any) -> Callable[[], Any]:
    network = build_mil_network("abmil", 12, 2)
    path = save_fold_model(tmp / "models", 0, network.state_dict(), network, {"task": "subtyping",
                                                                              "classes": ["x", "y"]})
    torch.save({"head.weight": payload}, path)
    return lambda: load_fold_weights(network, tmp / "models", 0)


def _served_fold_ensemble(tmp: Path, payload: Any) -> Callable[[], Any]:
    network = build_mil_network("abmil", 12, 2)
    path = save_fold_model(tmp / "models", 0, network.state_dict(), network, {"task": "subtyping",
                                                                              "classes": ["x", "y"]})
    torch.save({"head.weight": payload}, path)
    return lambda: FoldEnsemblePredictor(tmp / "models", device="cpu")


def _reference_checkpoint(tmp: Path, payload: Any) -> Callable[[], Any]:
    path = tmp / "model_iu_xray.pth"
    torch.save({"epoch": 3, "state_dict": {"encoder_decoder.logit.weight": payload}, "monitor_best": 0.1}, path)
    return lambda: read_reference_checkpoint(path)


def _feature_file(tmp: Path, payload: Any) -> Callable[[], Any]:
    path = tmp / "slide-1.pt"
    torch.save({"feats": payload}, path)
    return lambda: read_feature_file(path)


def _vocabulary(tmp: Path, payload: Any) -> Callable[[], Any]:
    path = tmp / "vocab.json"
    torch.save(payload, path)  # a pickle where JSON belongs
    return lambda: Vocabulary.load(path)


LOADERS = {
    "resume checkpoint (checkpoints/last.pt)": _resume_checkpoint,
    "report model.pt": _model_pt,
    "served report model (MLflow artifact)": _served_report_model,
    "encoder weights": _encoder_weights,
    "pretrained encoder of a transfer bundle": _pretrained_encoder,
    "fold model.pt": _fold_model,
    "served fold ensemble (MLflow artifact)": _served_fold_ensemble,
    "reference HistGen checkpoint": _reference_checkpoint,
    "feature file .pt": _feature_file,
    "vocabulary": _vocabulary,
}


def test_the_crafted_file_really_runs_code_when_unpickled(tmp_path):
    """The control: without weights_only the payload does write its marker (so the tests below can fail)."""
    marker = tmp_path / "marker"
    torch.save({"x": RunsCode(marker)}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_every_loader_refuses_a_file_that_would_run_code(tmp_path, loader):
    marker = tmp_path / "marker"
    load = LOADERS[loader](tmp_path, RunsCode(marker))
    with pytest.raises(Exception) as caught:
        load()
    message = str(caught.value)
    assert not marker.exists(), f"{loader}: unpickling ran code"
    if loader == "vocabulary":
        assert "vocab.json: cannot read vocabulary JSON" in message
    else:
        assert "refused to load" in message and "names exec" in message and "could run code" in message, message
        assert str(tmp_path) in message, "the message names the file"


def test_a_resume_checkpoint_of_adam_and_steplr_still_resumes(tmp_path):
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    objects = {"model": net, "optimizer": optimizer, "lr_scheduler": scheduler}
    handler = TrainingCheckpoint(tmp_path / "last.pt", objects)
    engine = Engine(lambda e, b: None)
    engine.state.epoch, engine.state.iteration, engine.state.max_epochs = 2, 8, 5
    handler(engine)
    fresh = {"model": torch.nn.Linear(3, 2)}
    fresh["optimizer"] = torch.optim.Adam(fresh["model"].parameters(), lr=0.1)
    fresh["lr_scheduler"] = torch.optim.lr_scheduler.StepLR(fresh["optimizer"], 1, gamma=0.5)
    other = Engine(lambda e, b: None)
    other.state.max_epochs = 5
    TrainingCheckpoint(tmp_path / "last.pt", fresh).load(other)
    assert (other.state.epoch, other.state.iteration) == (2, 8)
    assert torch.equal(fresh["model"].weight, net.weight)
    assert fresh["lr_scheduler"].get_last_lr() == scheduler.get_last_lr() == [0.05]
    assert fresh["optimizer"].state_dict()["state"][0]["exp_avg"].equal(optimizer.state_dict()["state"][0]["exp_avg"])


def test_a_truncated_checkpoint_is_a_named_error(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"last.pt: cannot read this resume checkpoint"):
        load_plain(path, what="resume checkpoint")


def test_the_reference_checkpoint_may_hold_numpy_scalars_and_nothing_else(tmp_path):
    """The reference trainer stores its best score as ``numpy.float64``: that one plain type is allowed."""
    folder = require_histgen_small()
    blob = torch.load(folder / "checkpoint.pth", weights_only=True)
    blob["monitor_best"] = np.float64(blob["monitor_best"])
    blob["epoch"] = np.int64(blob["epoch"])
    torch.save(blob, tmp_path / "numpy.pth")
    assert read_reference_checkpoint(tmp_path / "numpy.pth").keys() == read_reference_checkpoint(
        HISTGEN_SMALL / "checkpoint.pth").keys()
    blob["args"] = pd.Timestamp("2024-01-01")  # any other class is refused, even a harmless one
    torch.save(blob, tmp_path / "other.pth")
    with pytest.raises(UnsafeFileError, match="refused to load"):
        read_reference_checkpoint(tmp_path / "other.pth")


# ------------------------------------------------------------------ ids that become file names
@pytest.mark.parametrize("bad", ["", "../x", "/abs/path", "a/b", "a\\b", "..", ".", "x..y", "a\nb", "a\x00b",
                                 "tab\there", " padded", "x" * 201, "\u202eevil"])
def test_ids_that_could_leave_the_folder_are_refused(bad):
    with pytest.raises(UnsafeIdError, match="cannot be used as a file name"):
        check_file_id(bad, "slide id")
    with pytest.raises(UnsafeIdError):
        output_file("/out", bad, ".h5", "slide id")


@pytest.mark.parametrize("good", ["TCGA-AA-3511-01Z-00-DX1", "case 7", "slide.v2", "émile_01", "a" * 200])
def test_ordinary_ids_name_a_file_directly_inside_the_folder(good):
    assert output_file("/out", good, ".h5") == Path("/out") / f"{good}.h5"


def test_fold_names_are_whole_numbers():
    assert fold_dir_name(3) == fold_dir_name("3") == "fold_3"
    for bad in ("../x", -1, True, 1.5, "1/2", "٣"):
        with pytest.raises(UnsafeIdError, match="non-negative whole number"):
            fold_dir_name(bad)


def _copy_cmu(folder: Path) -> Path:
    from tests.support.slide_files import shared_path

    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(shared_path("fixtures", "slides", "CMU-1-Small-Region.svs"), folder / "cmu.svs"))


def test_bad_slide_ids_fail_in_the_manifest_and_nothing_outside_is_written_or_deleted(tmp_path):
    from scripts.encoders import build_encoder
    from scripts.wsi import FeatureExtractor

    slide = _copy_cmu(tmp_path / "slides")
    out = tmp_path / "work" / "features"
    victim = tmp_path / "work" / "x.h5"  # what '../x' would name: an earlier run's file, not ours to delete
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"someone else's features")
    absolute = tmp_path / "abs"
    csv_path = tmp_path / "slides" / "slides.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slide_id", "path"])
        writer.writerows([("../x", "cmu.svs"), (str(absolute), "cmu.svs"), ("bad\x1bid", "cmu.svs"),
                          ("good", "cmu.svs")])
    encoder = build_encoder("builtin-small")
    rows = FeatureExtractor(out, encoder, slides_csv=csv_path, progress=False, save_pt=True, num_workers=0).run()
    assert [(r.slide_id, r.status) for r in rows] == [("../x", "failed"), (str(absolute), "failed"),
                                                      ("bad\x1bid", "failed"), ("good", "done")]
    assert all("cannot be used as a file name" in r.error for r in rows[:3])
    assert [(r.slide_id, r.status) for r in read_manifest(out / "manifest.csv")] == [(r.slide_id, r.status)
                                                                                     for r in rows]
    assert victim.read_bytes() == b"someone else's features"
    assert not absolute.with_suffix(".h5").exists() and not list(tmp_path.glob("abs*"))
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["features", "x.h5"]
    assert (out / "good.h5").is_file() and slide.is_file()


def test_report_ids_that_would_leave_the_folder_are_kept_out_of_the_per_slide_files(tmp_path, caplog):
    from scripts.engines.report_outputs import ReportWriter

    writer = ReportWriter(tmp_path / "reports")
    writer.rows = [{"id": "../escape", "generated": "a"}, {"id": "ok", "generated": "b"}]
    writer(Engine(lambda e, b: None))
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["ok.findings.json", "ok.txt", "reports.csv"]
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "escape.findings.json").exists()
    assert "report id '../escape' cannot be used as a file name" in caplog.text


# ------------------------------------------------------------------ slide lists
def test_relative_csv_paths_resolve_against_the_csv_folder_whatever_slides_dir_says(tmp_path, monkeypatch):
    lists = tmp_path / "lists"
    (lists / "sub").mkdir(parents=True)
    (lists / "sub" / "a.svs").write_bytes(b"x")
    (lists / "slides.csv").write_text("path\nsub/a.svs\n")
    monkeypatch.chdir(tmp_path)
    (src,) = list_slides(slides_dir=str(tmp_path / "elsewhere"), slides_csv="lists/slides.csv")
    assert Path(src.path) == (lists / "sub" / "a.svs").resolve()


def test_broken_entries_of_a_slide_folder_are_listed_with_their_reason(tmp_path):
    root = tmp_path / "slides"
    root.mkdir()
    (root / "real.svs").write_bytes(b"x")
    (root / "dangling.svs").symlink_to(root / "gone.svs")
    (root / "loop.svs").symlink_to(root / "loop.svs")
    (root / "folder.svs").mkdir()
    (root / "folder.svs" / "inner.svs").write_bytes(b"x")  # inside a slide-named folder: not searched
    (root / "sub").mkdir()
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)  # a folder link loop: not followed
    found = {Path(s.path).name: slide_path_problem(s.path) for s in list_slides(slides_dir=root)}
    assert found == {"real.svs": None, "dangling.svs": "dangling symbolic link", "loop.svs": "symbolic link loop",
                     "folder.svs": "a folder, not a slide file"}


def test_broken_slide_entries_appear_in_the_manifest_as_failed(tmp_path):
    from scripts.encoders import build_encoder
    from scripts.wsi import FeatureExtractor

    root = tmp_path / "slides"
    _copy_cmu(root)
    (root / "dangling.svs").symlink_to(root / "gone.svs")
    (root / "loop.svs").symlink_to(root / "loop.svs")
    (root / "folder.svs").mkdir()
    rows = FeatureExtractor(tmp_path / "out", build_encoder("builtin-small"), slides_dir=root, progress=False,
                            num_workers=0, save_thumbnails=False).run()
    got = {r.slide_id: (r.status, r.error) for r in read_manifest(tmp_path / "out" / "manifest.csv")}
    assert got["cmu"][0] == "done" and len(rows) == 4
    assert got["dangling"][0] == got["loop"][0] == got["folder"][0] == "failed"
    assert "dangling symbolic link" in got["dangling"][1] and "symbolic link loop" in got["loop"][1]
    assert "a folder, not a slide file" in got["folder"][1]


# ------------------------------------------------------------------ served feature_file paths
def test_served_feature_paths_are_off_by_default_and_stay_inside_the_root(tmp_path):
    root = tmp_path / "features"
    root.mkdir()
    torch.save(torch.ones(3, 4), root / "s1.pt")
    secret = tmp_path / "secret.pt"
    torch.save(torch.ones(3, 4), secret)
    (root / "link.pt").symlink_to(secret)
    with pytest.raises(FeatureFileNotAllowedError, match=f"turned off on this server.*{FEATURE_ROOT_ENV}"):
        resolve_feature_file(str(root / "s1.pt"), None)
    assert resolve_feature_file("s1.pt", root.resolve()) == (root / "s1.pt").resolve()
    assert resolve_feature_file(str(root / "s1.pt"), root.resolve()) == (root / "s1.pt").resolve()
    for probe in (str(secret), "../secret.pt", "link.pt", "missing.pt", "/etc/passwd", "s1.pt\x00"):
        with pytest.raises(FeatureFileNotAllowedError) as err:
            resolve_feature_file(probe, root.resolve())
        # the same words whether the file exists or not, naming only what the client sent
        assert str(err.value) == f"feature_file {probe!r}: not a feature file under the server's feature root"


def test_the_logged_pyfunc_refuses_paths_and_answers_one_line_errors(tmp_path, monkeypatch):
    """A real pyfunc model logged to a sqlite store, loaded back and asked for server files."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from scripts.serving.pyfunc_model import log_report_model

    model_dir = _small_report_model(tmp_path / "models").parent
    features = tmp_path / "features"
    features.mkdir()
    torch.save(torch.randn(9, 12), features / "s1.pt")
    monkeypatch.delenv(FEATURE_ROOT_ENV, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns.db'}")
    try:
        # artifacts under tmp_path too: a sqlite store's default artifact root is ./mlruns in the cwd
        experiment = mlflow.create_experiment("trust", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = log_report_model(model_dir)
        model = mlflow.pyfunc.load_model(info.model_uri)
        with pytest.raises(MlflowException, match="feature_file inputs are turned off") as err:
            model.predict(pd.DataFrame({"feature_file": [str(features / "s1.pt")]}))
        assert err.value.get_http_status_code() == 400
        body = err.value.serialize_as_json()
        assert "stack_trace" not in body and "Traceback" not in body and "site-packages" not in body
        with pytest.raises(MlflowException, match="feature dimension 4, the model expects 12") as err:
            model.predict(pd.DataFrame({"features": [[[0.5] * 4]]}))
        assert "\n" not in err.value.message
        ok = model.predict(pd.DataFrame({"slide_id": ["s"], "features": [np.ones((5, 12)).tolist()]}))
        assert list(ok["slide_id"]) == ["s"]
        monkeypatch.setenv(FEATURE_ROOT_ENV, str(features))
        model = mlflow.pyfunc.load_model(info.model_uri)
        by_file = model.predict(pd.DataFrame({"feature_file": ["s1.pt"]}), params={"beam_size": 1, "max_len": 3})
        assert list(by_file["slide_id"]) == ["s1"]
        with pytest.raises(MlflowException, match="not a feature file under the server's feature root"):
            model.predict(pd.DataFrame({"feature_file": [str(model_dir / "model.pt")]}))
    finally:
        mlflow.set_tracking_uri(None)


# ------------------------------------------------------------------ archives
def _archive(path: Path, files: dict[str, bytes], checksums: bool = True, mode: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
        if checksums:
            listing = format_checksums((name.split("/", 1)[1], sha256_bytes(data)) for name, data in files.items())
            zf.writestr(f"bundle/{CHECKSUM_FILE}", listing)
    return path


def _left_behind(tmp_path: Path, archive: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p != archive)


def test_a_zip_bomb_is_refused_by_ratio_with_the_default_limits_and_leaves_nothing(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("bundle/models/model.pt", "w", force_zip64=True) as out:
            block = bytes(1 << 20)
            for _ in range(256):  # 256 MiB of zeros in ~250 KB
                out.write(block)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(CompressionRatioError, match="bomb.zip: member 'bundle/models/model.pt' expands"):
        safe_extract(bomb, tmp_path / "out" / "inner")
    assert _left_behind(tmp_path, bomb) == []


@pytest.mark.parametrize("limits,error,match", [
    (ExtractLimits(max_total_bytes=1500), ArchiveTooLargeError, "members expand to"),
    (ExtractLimits(max_file_bytes=900), ArchiveMemberTooLargeError, "expands to 1000 bytes"),
    (ExtractLimits(max_files=2), TooManyMembersError, "3 members, more than the limit of 2"),
    (ExtractLimits(max_ratio=2, ratio_floor_bytes=100), CompressionRatioError, "possible zip bomb"),
])
def test_each_archive_limit_is_its_own_error_and_leaves_nothing(tmp_path, limits, error, match):
    archive = _archive(tmp_path / "a.zip", {"bundle/a.bin": bytes(1000), "bundle/b.bin": os.urandom(600)})
    with pytest.raises(error, match=match):
        safe_extract(archive, tmp_path / "out", limits=limits)
    assert _left_behind(tmp_path, archive) == []


def test_an_archive_without_checksums_is_refused_unless_allowed(tmp_path):
    archive = _archive(tmp_path / "plain.zip", {"bundle/configs/a.json": b"{}"}, checksums=False)
    with pytest.raises(MissingChecksumsError, match=f"no {CHECKSUM_FILE} covers 1 file"):
        safe_extract(archive, tmp_path / "out")
    assert _left_behind(tmp_path, archive) == []
    written = safe_extract(archive, tmp_path / "out", allow_unverified=True)
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == ["bundle/configs/a.json"]


def test_a_file_beside_the_checksummed_folder_is_not_let_through(tmp_path):
    archive = _archive(tmp_path / "mixed.zip", {"bundle/configs/a.json": b"{}"})
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("other/run_me.py", "print('unverified')")
    with pytest.raises(MissingChecksumsError, match="other/run_me.py"):
        safe_extract(archive, tmp_path / "out")


def test_a_checksum_mismatch_removes_what_was_extracted(tmp_path):
    archive = _archive(tmp_path / "t.zip", {"bundle/configs/a.json": b"{}", "bundle/models/m.pt": b"weights"})
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, b"changed" if info.filename.endswith("m.pt") else src.read(info))
    target = tmp_path / "out"
    target.mkdir()
    (target / "kept.txt").write_text("the user's own file")
    with pytest.raises(ChecksumError, match="differs: models/m.pt"):
        safe_extract(tampered, target)
    assert sorted(p.name for p in target.iterdir()) == ["kept.txt"]


@pytest.mark.parametrize("mode", [0o600, 0o644, 0, 0o100600])
def test_entries_written_by_zipfile_writestr_are_regular_files(tmp_path, mode):
    archive = _archive(tmp_path / "w.zip", {"bundle/configs/a.json": b"{}"}, mode=mode)
    written = safe_extract(archive, tmp_path / "out")
    assert [p.name for p in written] == ["a.json", CHECKSUM_FILE] and written[0].read_bytes() == b"{}"


# ------------------------------------------------------------------ the real workflow
@pytest.mark.slow
def test_a_bundle_resume_from_a_crafted_checkpoint_fails_and_runs_nothing(tmp_path):
    """The real workflow: ``monai.bundle run training`` with a hostile ``checkpoints/last.pt`` in output_dir."""
    from scripts.demo.feature_bags import make_demo_dataset
    from tests.support.bundle_runs import bundle_command, bundle_env, path_of

    demo = make_demo_dataset(tmp_path / "demo", n_train=4, n_val=2, n_test=2, feature_dim=16, n_patches=(8, 12))
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    marker = tmp_path / "marker"
    torch.save({"model": {"x": RunsCode(marker)}, "trainer": {"epoch": 1, "iteration": 1}},
               out / "checkpoints" / "last.pt")
    cmd = bundle_command("training", ("train.json",), {
        "dataset_dir": path_of(demo.dataset_dir), "annotation_file": path_of(demo.annotation_file),
        "output_dir": path_of(out), "max_epochs": 1, "batch_size": 2, "val_batch_size": 2, "max_seq_length": 20,
        "beam_size": 1})
    proc = subprocess.run(cmd, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert not marker.exists(), "the crafted checkpoint ran code"
    assert "refused to load this resume checkpoint" in proc.stdout + proc.stderr
    assert not (out / "models" / "model.pt").exists()


