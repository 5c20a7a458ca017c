"""README.md's shell blocks, run as written on small data (issue 14, item 8; see tests/support/doc_runs.py).

The install + main job, the apps' installs and the test command are what ``.ci/run`` runs: those blocks are
checked word for word against it instead of being run again. The others run in document order in one
workspace where the documented demo training ran on the tiny demo, with the placeholders of docs/README.md's
table filled in.
"""

from __future__ import annotations

import pytest

from tests.support.doc_commands import doc_blocks
from tests.support.doc_runs import prepare_base, run_block, session_folder
from tests.support.shared_fixtures import REPO_ROOT, require_histgen_small

BLOCKS = doc_blocks(REPO_ROOT / "README.md")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    require_histgen_small()
    return prepare_base(tmp_path_factory.mktemp("docs_readme") / "clone", session_folder(tmp_path_factory))


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block_runs_as_written(block, workspace):
    run_block(block, workspace)
