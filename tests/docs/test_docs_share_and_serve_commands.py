"""The shell and python blocks of docs/share_and_serve/*.md, run as written on small data.

Issue 14, item 8; see tests/support/doc_runs.py. In one workspace where the documented demo training ran on the
tiny demo, in this order: the bundle zip (export, unzip, run from the unzipped folder), the exported network,
the MLflow registry (train and register, serve, ask), MONAI Deploy and MONAI Label (their installs are
``.ci/run``'s; the apps need them). Servers start in the background, are waited for on their ready endpoint and
stop when the module ends.
"""

from __future__ import annotations

import pytest

from tests.support.doc_commands import SHELL_LANGUAGES, doc_blocks
from tests.support.doc_runs import ci_block, prepare_base, run_block, session_folder, stop_servers
from tests.support.shared_fixtures import REPO_ROOT, require_histgen_small

FOLDER = REPO_ROOT / "docs" / "share_and_serve"
ORDER = ("README.md", "bundle_zip.md", "exported_network.md", "registry.md", "monai_deploy.md", "monailabel.md")
GUIDES = [FOLDER / name for name in ORDER] + sorted(p for p in FOLDER.glob("*.md") if p.name not in ORDER)
BLOCKS = [b for md in GUIDES for b in sorted(doc_blocks(md, (*SHELL_LANGUAGES, "python")), key=lambda b: b.line)]
#: the apps' side installs (``.ci/run`` makes them; without them the apps' blocks cannot run)
APP_INSTALLS = {"monai_deploy.md": REPO_ROOT / "build" / "monai_deploy_env",
                "monailabel.md": REPO_ROOT / "build" / "monailabel_env"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    require_histgen_small()
    root = tmp_path_factory.mktemp("docs_share_and_serve") / "clone"
    try:
        yield prepare_base(root, session_folder(tmp_path_factory))
    finally:
        stop_servers(root)


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_share_and_serve_block_runs_as_written(block, workspace):
    install = APP_INSTALLS.get(block.path.rsplit("/", 1)[-1])
    if install is not None and not ci_block(block) and not install.is_dir():
        pytest.skip(f"{install.name} is not installed: run `bash apps/{install.name.removesuffix('_env')}/install.sh "
                    ".venv/bin/python` (.ci/run does, before the tests)")
    run_block(block, workspace)
