"""Every shell block of ``bundle/subtyping/docs/README.md`` and ``docs/adding_a_task.md`` runs as written (issue 14,
item 8).

Each block runs as one bash script in a throw-away workspace (:mod:`tests.support.sibling_doc_runs`), after the
file's earlier blocks, with the ``/data/...`` paths of its "Paths in the examples" table replaced by small data
(the tiny slide demo's features, and its adenocarcinoma / squamous cell carcinoma slides labelled LUAD / LUSC),
and only the keys of :data:`tests.support.sibling_doc_runs.APPENDED_OVERRIDES` appended (the tiny demo, 2 folds
of 1 epoch, 1 report epoch). ``models/model.pt`` (the report bundle's model, which ``--pretrained_encoder auto``
and the "Your data" block use) is a small untrained report model on 128-d features. ``docs/adding_a_task.md``
runs on the grade test's 12 tiny bags and grade table, in a workspace of its own.
"""

from __future__ import annotations

import json

import pytest

from scripts.engines.model_provenance import RESEARCH_NOTICE
from tests.support.bundle_runs import REPO_ROOT
from tests.support.doc_commands import doc_blocks, placeholder_table
from tests.support.sibling_doc_runs import (
    DocBlockRunner,
    assert_block_runs,
    assert_demo_predictions_carry_the_synthetic_notice,
    assert_report_pretrained_runs,
    grade_doc_data,
    json_listing,
    make_workspace,
    subtyping_doc_data,
    undocumented_paths,
)
from tests.support.transfer_demo import tiny_report_demo
from tests.support.transfer_runs import read_rows
from tests.transfer.test_subtyping_bundle import save_test_report_model

MD = REPO_ROOT / "bundle" / "subtyping" / "docs" / "README.md"
BLOCKS = doc_blocks(MD)
TASK_MD = REPO_ROOT / "docs" / "adding_a_task.md"
TASK_BLOCKS = doc_blocks(TASK_MD)


def test_every_placeholder_path_of_the_docs_is_in_their_tables():
    assert BLOCKS, f"{MD}: no shell blocks found"
    assert undocumented_paths(MD) == {}
    assert set(placeholder_table(MD)) == {"/data/features", "/data/nsclc.csv"}
    assert TASK_BLOCKS and undocumented_paths(TASK_MD) == {}
    assert set(placeholder_table(TASK_MD)) == {"/data/grades.csv", "/data/features"}


def test_the_grade_configs_of_adding_a_task_are_the_repository_s():
    listed = json_listing(TASK_MD)
    assert sorted(listed) == [f"bundle/grade/configs/{n}.json" for n in ("evaluate", "inference", "train")]
    for path, config in listed.items():
        assert json.loads((REPO_ROOT / path).read_text()) == config, path


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    demo = tiny_report_demo(tmp_path_factory)
    folder = tmp_path_factory.mktemp("subtyping_doc")
    model = save_test_report_model(folder / "report_model" / "models")
    data = subtyping_doc_data(folder / "data", demo)
    assert set(placeholder_table(MD)) <= set(data), "a documented placeholder without small data"
    return DocBlockRunner(MD, make_workspace(folder / "workspace", demo, model.parent), data)


@pytest.fixture(scope="module")
def task_runner(tmp_path_factory):
    folder = tmp_path_factory.mktemp("task_doc")
    data = grade_doc_data(folder / "data")
    assert set(placeholder_table(TASK_MD)) <= set(data), "a documented placeholder without small data"
    return DocBlockRunner(TASK_MD, make_workspace(folder / "workspace"), data)


@pytest.mark.slow
@pytest.mark.parametrize("block_id", [b.id for b in BLOCKS])
def test_documented_block_runs_as_written(runner, block_id):
    assert_block_runs(runner, block_id)


@pytest.mark.slow
@pytest.mark.parametrize("block_id", [b.id for b in TASK_BLOCKS])
def test_adding_a_task_block_runs_as_written(task_runner, block_id):
    assert_block_runs(task_runner, block_id)
    rows = read_rows(task_runner.workspace / "runs" / "grade" / "predictions" / "predictions.csv")
    assert list(rows[0]) == ["slide_id", "predicted", "prob_low", "prob_high", "notice"]  # as the doc lists them
    assert {r["notice"] for r in rows} == {RESEARCH_NOTICE}  # the user's own data: no SYNTHETIC-DATA line


@pytest.mark.slow
def test_the_demo_s_predictions_carry_the_synthetic_data_notice(runner):
    assert_demo_predictions_carry_the_synthetic_notice(runner, BLOCKS, "subtyping")


@pytest.mark.slow
def test_the_report_pretrained_runs_start_from_the_documented_report_models(runner):
    assert_report_pretrained_runs(runner, BLOCKS, "/data/nsclc.csv")
