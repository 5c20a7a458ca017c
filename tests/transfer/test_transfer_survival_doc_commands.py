"""Every shell block of ``bundle/survival/docs/README.md`` runs as written (issue 14, item 8).

As in ``test_transfer_subtyping_doc_commands.py`` (:mod:`tests.support.sibling_doc_runs`): one bash script per
block, in a throw-away workspace, after the file's earlier blocks, ``/data/...`` replaced by small data (the tiny
slide demo's features and its SYNTHETIC outcome table), only the keys of
:data:`tests.support.sibling_doc_runs.APPENDED_OVERRIDES` appended.
"""

from __future__ import annotations

import pytest

from tests.support.bundle_runs import REPO_ROOT
from tests.support.doc_commands import doc_blocks, placeholder_table
from tests.support.sibling_doc_runs import (
    TINY_DEMO,
    TINY_REPORT_DEMO,
    DocBlockRunner,
    appended_keys,
    assert_block_runs,
    assert_demo_predictions_carry_the_synthetic_notice,
    assert_report_pretrained_runs,
    make_workspace,
    runnable_script,
    survival_doc_data,
    undocumented_paths,
)
from tests.support.transfer_demo import tiny_report_demo
from tests.transfer.test_subtyping_bundle import save_test_report_model

MD = REPO_ROOT / "bundle" / "survival" / "docs" / "README.md"
BLOCKS = doc_blocks(MD)


def test_every_placeholder_path_of_the_doc_is_in_its_table():
    assert BLOCKS, f"{MD}: no shell blocks found"
    assert undocumented_paths(MD) == {}
    assert set(placeholder_table(MD)) == {"/data/features", "/data/luad_os.csv"}


def test_an_undocumented_placeholder_is_found_and_overrides_go_only_where_the_table_says(tmp_path):
    md = tmp_path / "doc.md"
    md.write_text("# T\n\n```bash\npython -m monai.bundle run training --config_file configs/train.json "
                  "--dataset_dir /data/feats --annotation_file /data/notes.json\n```\n\n"
                  "## Paths in the examples\n\n| path | meaning |\n|---|---|\n| `/data/feats` | features |\n")
    assert undocumented_paths(md, root=tmp_path) == {"doc.md:3": ["/data/notes.json"]}
    block = doc_blocks(md, root=tmp_path)[0]
    with pytest.raises(KeyError, match="/data/notes.json"):
        runnable_script(block, {"/data/feats": tmp_path / "f"})
    sibling = "['bundle/survival/configs/train.json','scripts/transfer/configs/transfer_train.json']"
    assert appended_keys(f'python -m monai.bundle run training --config_file "{sibling}"') == [
        ("demo", TINY_DEMO), ("num_folds", "2"), ("max_epochs", "1")]
    assert appended_keys('python -m monai.bundle run training --config_file "$B" --csv_file x.csv') == [
        ("num_folds", "2"), ("max_epochs", "1")]
    assert appended_keys('python -m monai.bundle run evaluating --config_file "$B"') == [("demo", TINY_DEMO)]
    assert appended_keys('python -m monai.bundle run inference --config_file "$B" --dataset_dir d') == []
    assert appended_keys("python -m monai.bundle run training --config_file configs/train.json") == [
        ("demo", TINY_REPORT_DEMO), ("max_epochs", "1")]
    assert appended_keys("ls runs") == []


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    demo = tiny_report_demo(tmp_path_factory)
    folder = tmp_path_factory.mktemp("survival_doc")
    model = save_test_report_model(folder / "report_model" / "models", seed=1)
    data = survival_doc_data(folder / "data", demo)
    assert set(placeholder_table(MD)) <= set(data), "a documented placeholder without small data"
    return DocBlockRunner(MD, make_workspace(folder / "workspace", demo, model.parent), data)


@pytest.mark.slow
@pytest.mark.parametrize("block_id", [b.id for b in BLOCKS])
def test_documented_block_runs_as_written(runner, block_id):
    assert_block_runs(runner, block_id)


@pytest.mark.slow
def test_the_demo_s_risks_carry_the_synthetic_data_notice(runner):
    assert_demo_predictions_carry_the_synthetic_notice(runner, BLOCKS, "survival")


@pytest.mark.slow
def test_the_report_pretrained_runs_start_from_the_documented_report_models(runner):
    assert_report_pretrained_runs(runner, BLOCKS, "/data/luad_os.csv")
