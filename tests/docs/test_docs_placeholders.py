"""The tables that say how the documented commands are run stay true to the docs (fast; issue 14, item 8).

- every placeholder row of docs/README.md's "Paths in the examples" is built by the tests, written by the
  commands, or named only by commands that are not run (and nothing else is);
- every command of README.md and docs/**/*.md (not the sibling bundles' docs, which have their own tables) names
  only documented placeholder paths;
- every entry of the appended-overrides and not-run tables is a command the docs still show, word for word.
"""

from __future__ import annotations

from tests.support.doc_commands import SHELL_LANGUAGES, block_commands, doc_blocks
from tests.support.doc_data import BUILT, NOT_BUILT, WRITTEN_BY_COMMANDS
from tests.support.doc_runs import (
    APPENDED_OVERRIDES,
    BLOCK_ENVIRONMENT,
    NOT_RUN,
    SIBLING_TRAININGS,
    STAND_INS,
    documented_placeholders,
    python_key,
    undocumented_paths,
)
from tests.support.shared_fixtures import REPO_ROOT

MARKDOWN = [REPO_ROOT / "README.md", *sorted(p for p in (REPO_ROOT / "docs").glob("**/*.md")
                                             if p.name != "adding_a_task.md")]


def _documented_commands() -> dict[tuple[str, str], str]:
    """(file, command or python key) -> block id, for every shell and python block of README.md and docs/."""
    found = {}
    for md in MARKDOWN:
        for block in doc_blocks(md, (*SHELL_LANGUAGES, "python")):
            if block.language == "python":
                found[(block.path, python_key(block))] = block.id
            else:
                for command in block_commands(block):
                    found[(block.path, command)] = block.id
    return found


def test_every_placeholder_row_has_data_or_a_reason():
    table = documented_placeholders()
    assert len(table) >= 10
    handled = set(BUILT) | WRITTEN_BY_COMMANDS | NOT_BUILT
    assert set(table) - handled == set(), "rows of 'Paths in the examples' that the tests give no data"
    assert handled - set(table) == set(), "data built for placeholders the table no longer documents"
    assert set(STAND_INS) <= set(table)


def test_every_documented_path_is_in_the_table():
    table = documented_placeholders()
    for md in MARKDOWN:
        for block in doc_blocks(md, (*SHELL_LANGUAGES, "python")):
            texts = [block.text] if block.language == "python" else block_commands(block)
            for text in texts:
                assert undocumented_paths(text, table) == [], f"{block.id}: {text!r}"


def test_override_and_not_run_tables_name_documented_commands():
    commands = _documented_commands()
    stale = [key for key in [*APPENDED_OVERRIDES, *NOT_RUN, *BLOCK_ENVIRONMENT] if key not in commands]
    assert stale == [], f"entries for commands the docs no longer show (update tests/support/doc_runs.py): {stale}"
    assert set(APPENDED_OVERRIDES).isdisjoint(NOT_RUN)


def test_docs_readme_says_which_commands_are_not_run():
    text = (REPO_ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    assert len(NOT_RUN) == 5 and "the five commands it does not\nrun" in text, "update docs/README.md's count"
    assert sum("UNI" in why for why in NOT_RUN.values()) + sum(
        "Docker" in why for why in NOT_RUN.values()) == len(NOT_RUN)


def test_the_base_workspace_s_sibling_trainings_are_the_sibling_docs_commands():
    for path, command in SIBLING_TRAININGS:
        shown = {c for block in doc_blocks(REPO_ROOT / path) for c in block_commands(block)}
        assert command in shown, f"{path} no longer shows {command!r} (update doc_runs.SIBLING_TRAININGS)"


def test_undocumented_paths_are_caught():
    table = {"/data/slides": "slides"}
    assert undocumented_paths("x --slides_dir /data/slides/a.svs --out /data/other", table) == ["/data/other"]
    uri = "sqlite:////path/to/eval/mlruns.db bundle/subtyping/models/x"
    assert undocumented_paths(uri, table) == ["/path/to/eval/mlruns.db"]
