"""The shell and python blocks of docs/*.md (the bundle README and the guides), run as written on small data.

Issue 14, item 8; see tests/support/doc_runs.py. The guides build on each other (docs/README.md trains
``runs/exp1``, then evaluates it; docs/clinical_metrics.md evaluates it again with a text encoder), so the blocks
run in document order (docs/README.md first, then the other guides by name) in one workspace where the
documented demo training ran on the tiny demo. docs/adding_a_task.md is the sibling bundles' (tested with them).
"""

from __future__ import annotations

import pytest

from tests.support.doc_commands import SHELL_LANGUAGES, doc_blocks
from tests.support.doc_runs import prepare_base, run_block, session_folder
from tests.support.shared_fixtures import REPO_ROOT, require_histgen_small

GUIDES = [REPO_ROOT / "docs" / "README.md",
          *sorted(p for p in (REPO_ROOT / "docs").glob("*.md") if p.name not in ("README.md", "adding_a_task.md"))]
BLOCKS = [b for md in GUIDES for b in sorted(doc_blocks(md, (*SHELL_LANGUAGES, "python")), key=lambda b: b.line)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    require_histgen_small()
    return prepare_base(tmp_path_factory.mktemp("docs_guides") / "clone", session_folder(tmp_path_factory))


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_guide_block_runs_as_written(block, workspace):
    run_block(block, workspace)
