"""A re-run that trains nothing (the checkpoint already finished max_epochs) logs no MLflow run."""

from __future__ import annotations

import logging

import mlflow
import torch
from ignite.engine import Engine
from monai.handlers import MLFlowHandler

from scripts.engines import TrainingCheckpoint


def _run_once(tmp_path, uri: str) -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    engine = Engine(lambda e, batch: 0.0)
    TrainingCheckpoint(save_path=tmp_path / "checkpoints" / "last.pt",
                       save_dict={"model": net, "optimizer": torch.optim.SGD(net.parameters(), lr=0.1)}).attach(engine)
    MLFlowHandler(tracking_uri=uri, experiment_name="noop", artifacts=None, iteration_log=False,
                  close_on_complete=True).attach(engine)
    engine.run([0, 1], max_epochs=1)


def test_a_finished_run_resumed_logs_no_second_mlflow_run(tmp_path, caplog):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    _run_once(tmp_path, uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("noop")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    with caplog.at_level(logging.INFO):
        _run_once(tmp_path, uri)
    assert len(client.search_runs([experiment.experiment_id])) == 1, "the no-op re-run logged an MLflow run"
    assert "no MLflow run logged" in caplog.text and "nothing trained" in caplog.text
