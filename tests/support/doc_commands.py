"""The commands the documentation shows: fenced shell blocks of README.md and the docs, split into commands.

Used by the tests that run every documented command as written (issue 14, item 8). A block is a fenced code
block whose language is ``bash`` or ``sh`` (``python`` blocks are read with ``languages=("python",)``).
A command is one logical line: backslash continuations are joined, comment lines and trailing ``# ...``
comments (outside quotes) are dropped.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.support.shared_fixtures import REPO_ROOT

_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^```", re.S | re.M)
SHELL_LANGUAGES = ("bash", "sh", "shell")


@dataclass(frozen=True)
class DocBlock:
    """One fenced block of a Markdown file.

    Attributes:
        path: the Markdown file, relative to the repo root (e.g. ``docs/README.md``).
        line: 1-based line of the opening fence.
        language: the fence's language tag.
        text: the block's body.
    """

    path: str
    line: int
    language: str
    text: str

    @property
    def id(self) -> str:
        """``docs/README.md:57``: stable enough for a test id, precise enough to find the block."""
        return f"{self.path}:{self.line}"


def documented_markdown(root: Path = REPO_ROOT) -> list[Path]:
    """README.md, every ``docs/**/*.md`` and every sibling bundle's ``bundle/*/docs/**/*.md``, sorted."""
    files = [root / "README.md", *sorted(root.glob("docs/**/*.md")), *sorted(root.glob("bundle/*/docs/**/*.md"))]
    return [f for f in files if f.is_file()]


def doc_blocks(md: Path, languages: tuple[str, ...] = SHELL_LANGUAGES, root: Path = REPO_ROOT) -> list[DocBlock]:
    """The fenced blocks of ``md`` whose language is one of ``languages``, in file order."""
    text = md.read_text(encoding="utf-8")
    rel = md.resolve().relative_to(root.resolve()).as_posix()
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group("lang") in languages:
            line = text.count("\n", 0, match.start()) + 1
            blocks.append(DocBlock(rel, line, match.group("lang"), match.group("body")))
    return blocks


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` that lies outside quotes."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def block_commands(block: DocBlock) -> list[str]:
    """The block's commands, one logical line each (continuations joined, comments dropped)."""
    commands: list[str] = []
    pending = ""
    for raw in block.text.splitlines():
        line = _strip_comment(raw)
        if not pending and not line.strip():
            continue
        if line.endswith("\\"):  # the shell joins the next line: its indentation is only layout
            pending += (line[:-1].strip() if pending else line[:-1].rstrip()) + " "
            continue
        command = (pending + line.strip()).strip()
        pending = ""
        if command:
            commands.append(" ".join(command.split()) if "'" not in command and '"' not in command else command)
    if pending.strip():
        commands.append(pending.strip())
    return commands


def command_words(command: str) -> list[str]:
    """``command`` split as the shell would (quotes removed); for reading a command's flags in a test."""
    return shlex.split(command)


def flag_values(command: str) -> dict[str, str]:
    """``--key value`` pairs of ``command`` (``--key`` alone maps to ``""``)."""
    words = command_words(command)
    values: dict[str, str] = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            key, _, inline = word[2:].partition("=")
            if inline:
                values[key] = inline
            elif i + 1 < len(words) and not words[i + 1].startswith("--"):
                values[key] = words[i + 1]
            else:
                values[key] = ""
    return values


#: the heading of the section that documents the placeholder paths of a Markdown file's examples
PLACEHOLDER_HEADING = "Paths in the examples"
_PLACEHOLDER_ROW = re.compile(r"^\|\s*`(?P<path>[^`]+)`\s*\|\s*(?P<meaning>[^|]+?)\s*\|", re.M)


def placeholder_table(md: Path) -> dict[str, str]:
    """The placeholder paths a Markdown file documents: ``{"/data/slides": "a folder of slides", ...}``.

    Read from the Markdown table under a heading whose text is :data:`PLACEHOLDER_HEADING` (any level), up to
    the next heading; each row's first cell is the path in backticks, the second what it stands for.
    """
    text = md.read_text(encoding="utf-8")
    heading = re.search(rf"^#+\s*{re.escape(PLACEHOLDER_HEADING)}\s*$", text, re.M)
    if heading is None:
        return {}
    end = re.search(r"^#+\s", text[heading.end():], re.M)
    section = text[heading.end(): heading.end() + end.start()] if end else text[heading.end():]
    return {m.group("path"): m.group("meaning") for m in _PLACEHOLDER_ROW.finditer(section)}
