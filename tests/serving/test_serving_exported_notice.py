"""The exported ``model.ts`` carries the model's provenance, so the apps that serve it (MONAI Deploy's writer,
MONAI Label's task) give every reply the notice the bundle's own outputs carry (issue 14, item 1)."""

from __future__ import annotations

import pytest
import torch

from scripts.engines import save_report_model
from scripts.engines.model_provenance import RESEARCH_NOTICE, SYNTHETIC_WARNING, output_notice
from scripts.networks import HistGen, HistGenConfig
from scripts.serving import export_torchscript
from scripts.serving.report_predictor import ReportPredictor
from scripts.serving.torchscript_export import load_exported_provenance
from scripts.text import Vocabulary

TINY = dict(in_dim=16, d_vf=16, d_model=32, d_ff=32, num_heads=4, num_layers=1, topk=4, cmm_size=8, cmm_dim=32,
            region_size=4, prototype_num=3, vocab_size=4, dropout=0.0, drop_prob_lm=0.0)
SYNTHETIC = {"dataset": "HistGen demo (synthetic slides)", "synthetic": True, "slides": {"train": 3}}


def _model_dir(root, provenance):
    torch.manual_seed(0)
    return save_report_model(root / "models", HistGen(HistGenConfig(**TINY)), Vocabulary(["<unk>", "a", "b", "c"]),
                             provenance=provenance).parent


@pytest.mark.parametrize("synthetic", [True, False])
def test_the_exported_file_carries_the_provenance_and_the_app_notice_follows(synthetic, tmp_path):
    model_dir = _model_dir(tmp_path, SYNTHETIC if synthetic else {**SYNTHETIC, "synthetic": False, "dataset": "TCGA"})
    served = export_torchscript(model_dir, tmp_path / "served" / "model.ts")  # no model folder beside it
    record = load_exported_provenance(served)
    assert record["dataset"] == ("HistGen demo (synthetic slides)" if synthetic else "TCGA")
    assert "trained_at" in record  # the saved record, stamped when the model was written
    notice = output_notice(record)
    assert notice == ReportPredictor(model_dir, device="cpu").notice  # what MONAI Label's replies carry
    assert notice.startswith(SYNTHETIC_WARNING) is synthetic and notice.endswith(RESEARCH_NOTICE)


def test_a_model_without_provenance_gets_the_research_notice_only(tmp_path):
    served = export_torchscript(_model_dir(tmp_path, None), tmp_path / "served" / "model.ts")
    assert load_exported_provenance(served) is None
    assert output_notice(load_exported_provenance(served)) == RESEARCH_NOTICE
