"""Classification and survival scores of the transfer bundles, checked against the libraries they come from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from lifelines.utils import concordance_index as lifelines_c_index
from sklearn.metrics import roc_auc_score

from scripts.metrics import (
    ClassificationMetrics,
    SurvivalMetrics,
    case_level,
    classification_scores,
    concordance_index,
    confusion_matrix_counts,
    logrank_p_value,
    median_risk_groups,
    plot_confusion_matrix,
    plot_kaplan_meier,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_classification_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 10)
    probs = softmax(rng.normal(size=(30, 3)) + 1.5 * np.eye(3)[labels])
    scores = classification_scores(labels, probs)
    assert scores["auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert scores["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == labels))
    assert scores["loss"] == pytest.approx(-np.mean(np.log(probs[np.arange(30), labels])))
    binary = softmax(rng.normal(size=(20, 2)))
    binary_labels = rng.integers(0, 2, 20)
    expected = roc_auc_score(binary_labels, binary[:, 1])
    assert classification_scores(binary_labels, binary)["auc"] == pytest.approx(expected)


def test_a_class_absent_from_the_labels_is_left_out_of_the_auc():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    scores = classification_scores(labels, probs)
    expected = np.mean([roc_auc_score(labels == c, probs[:, c]) for c in (0, 1)])
    assert scores["auc"] == pytest.approx(expected)
    assert confusion_matrix_counts(labels, probs.argmax(1), 3) == [[2, 0, 0], [0, 1, 1], [0, 0, 0]]


def test_confusion_matrix_png(tmp_path):
    path = plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"], tmp_path / "cm.png", title="t")
    assert path.read_bytes()[:8] == PNG_MAGIC and not list(tmp_path.glob("*.tmp"))


def run_metric(metric, batches):
    engine = Engine(lambda e, batch: batch)
    metric.attach(engine, "scores")
    engine.run(batches, max_epochs=1)
    return engine.state.metrics


def test_classification_metric_collects_an_epoch():
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(10, 3)), dtype=torch.float32)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    batches = [{"pred": logits[:6], "label": {"label": labels[:6]}},
               {"pred": logits[6:], "label": {"label": labels[6:]}}]
    metrics = run_metric(ClassificationMetrics(num_classes=3), batches)
    direct = classification_scores(labels.numpy(), torch.softmax(logits, 1).numpy())
    assert metrics["auc"] == pytest.approx(direct["auc"]) and metrics["scores"]["accuracy"] == direct["accuracy"]


def test_concordance_index_agrees_with_lifelines():
    rng = np.random.default_rng(2)
    times = rng.exponential(10, 50).round(3) + 0.001 * np.arange(50)
    events = rng.integers(0, 2, 50)
    events[0] = 1
    risks = -times + rng.normal(0, 5, 50)
    ours = concordance_index(times, events, risks)
    assert ours == pytest.approx(lifelines_c_index(times, -risks, events))
    assert concordance_index(times, events, -times) == 1.0
    with pytest.raises(ValueError, match="all 3 samples are censored"):
        concordance_index([1, 2, 3], [0, 0, 0], [3, 2, 1])


def test_slides_of_a_case_count_once():
    merged = case_level(["A", "B", "A", "C"], [5, 9, 5, 2], [1, 0, 1, 1], [1.0, 0.0, 3.0, 4.0])
    assert merged.case_ids == ["A", "B", "C"]
    assert merged.risks.tolist() == [2.0, 0.0, 4.0] and merged.num_slides.tolist() == [2, 1, 1]
    assert median_risk_groups(merged.risks).tolist() == [False, False, True]


def test_kaplan_meier_png_and_log_rank(tmp_path):
    rng = np.random.default_rng(3)
    high = np.arange(80) < 40
    times = np.where(high, rng.exponential(2, 80), rng.exponential(20, 80))
    events = np.ones(80, dtype=int)
    info = plot_kaplan_meier(times, events, high, tmp_path / "km.png", title="demo", time_unit="months")
    assert (tmp_path / "km.png").read_bytes()[:8] == PNG_MAGIC
    assert info["logrank_p"] < 1e-6 and info["n_high"] == 40 and info["events_low"] == 40
    same = rng.exponential(5, 80)
    assert logrank_p_value(same, events, high) > 1e-3
    assert np.isnan(logrank_p_value(times, events, np.ones(80, dtype=bool)))


def test_survival_metric_merges_cases_and_reports_the_loss():
    cases = ["A", "A", "B", "C", "D"]
    risks = torch.tensor([2.0, 4.0, 1.0, 0.5, 5.0])
    times = torch.tensor([3.0, 3.0, 6.0, 9.0, 1.0])
    events = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0])
    indices = torch.arange(5)
    batches = [(risks[:3], times[:3], events[:3], indices[:3], torch.ones(3)),
               (risks[3:], times[3:], events[3:], indices[3:], torch.full((2,), 4.0))]
    metrics = run_metric(SurvivalMetrics(case_ids=cases, output_transform=lambda x: x), batches)
    merged = case_level(cases, times, events, risks)
    assert metrics["c_index"] == pytest.approx(concordance_index(merged.times, merged.events, merged.risks))
    assert metrics["num_cases"] == 4 and metrics["loss"] == pytest.approx(11 / 5)
