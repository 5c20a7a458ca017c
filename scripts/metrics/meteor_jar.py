"""One METEOR 1.5 Java process, spoken to the way pycocoevalcap's ``Meteor`` does.

The scores come from the same jar (``pycocoevalcap/meteor/meteor-1.5.jar``) started with the same
arguments (``-stdio -l en -norm``, 2 GB heap; only the JVM's garbage collector differs) and the same
protocol (one ``SCORE ||| refs ||| hyp`` line per pair, then one ``EVAL ||| stats ||| ...`` line), so the
numbers equal pycocoevalcap's. Unlike the pycocoevalcap wrapper, this one finds Java explicitly (``java``
argument), can be closed, never lets the JVM's stderr fill a pipe, and gives up after ``timeout_s`` instead of
hanging.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import IO

__all__ = ["MeteorError", "MeteorJar", "find_java", "meteor_jar_path"]

_JAR_NAME = "meteor-1.5.jar"


class MeteorError(RuntimeError):
    """METEOR cannot run: no Java, the jar is missing, the JVM failed to start or stopped answering."""


def find_java(java: str = "java") -> str | None:
    """Full path of the Java executable ``java`` (a name looked up on PATH, or a path), or None."""
    return shutil.which(java)


def meteor_jar_path() -> Path:
    """The METEOR 1.5 jar shipped inside the pycocoevalcap package."""
    from pycocoevalcap.meteor import meteor as pycoco_meteor

    return Path(pycoco_meteor.__file__).resolve().parent / _JAR_NAME


def _stop(process: subprocess.Popen, stderr_file: IO[bytes]) -> None:
    """Close stdin, wait briefly for the JVM, kill it if needed; close the stderr file."""
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for stream in (process.stdout, stderr_file):
        with contextlib.suppress(OSError):
            if stream is not None:
                stream.close()


def _one_line(text: str) -> str:
    """Keep the line protocol intact: no newlines, no ``|||`` separators inside a text."""
    return text.replace("\r", " ").replace("\n", " ").replace("|||", "")


class MeteorJar:
    """A running METEOR 1.5 scorer. Start once, score many times, then :meth:`close` (or use ``with``).

    Args:
        java: Java executable name or path (``shutil.which`` decides; no Java -> :class:`MeteorError`).
        jar: the METEOR jar; defaults to the one inside pycocoevalcap.
        max_heap: JVM heap limit, as pycocoevalcap (``-Xmx2G``).
        timeout_s: longest wait for one answer line (the first includes JVM start, about 5 s).

    The process is also stopped when this object is garbage-collected or the interpreter exits.
    """

    def __init__(
        self,
        java: str = "java",
        jar: str | os.PathLike[str] | None = None,
        max_heap: str = "2G",
        timeout_s: float = 300.0,
    ) -> None:
        java_path = find_java(java)
        if java_path is None:
            raise MeteorError(f"METEOR needs Java: {java!r} is not on PATH")
        jar_path = Path(jar) if jar is not None else meteor_jar_path()
        if not jar_path.is_file():
            raise MeteorError(f"METEOR jar not found: {jar_path}")
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._buffer = b""
        self._stderr = tempfile.TemporaryFile()
        # the parallel collector changes no score; it starts the jar (loading its paraphrase table) ~1.5 s sooner
        # than the default G1 on a 2-core machine (6.1 vs 7.4 s, mean of 3)
        command = [java_path, "-XX:+UseParallelGC", "-jar", f"-Xmx{max_heap}", jar_path.name, "-", "-", "-stdio",
                   "-l", "en", "-norm"]
        try:
            self._process = subprocess.Popen(
                command,
                cwd=jar_path.parent,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                bufsize=0,
            )
        except OSError as err:
            self._stderr.close()
            raise MeteorError(f"METEOR: cannot start {java_path} ({err})") from err
        self._finalizer = weakref.finalize(self, _stop, self._process, self._stderr)

    # ------------------------------------------------------------------ process talk
    def _failure(self, what: str, ended: bool = True) -> MeteorError:
        if ended:  # the pipe closed: give the JVM a moment to exit so its code can be reported
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        code = self._process.poll()
        self._stderr.seek(0)
        detail = self._stderr.read()[-2000:].decode("utf-8", errors="replace").strip()
        state = f"JVM exited with code {code}" if code is not None else "JVM still running"
        self.close()
        return MeteorError(f"METEOR {what} ({state}){': ' + detail if detail else ''}")

    def _send(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        fd = self._process.stdin.fileno()
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError as err:
            raise self._failure(f"input closed ({err})") from err

    def _receive(self) -> str:
        fd = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], self.timeout_s)
            if not ready:
                raise self._failure(f"gave no answer within {self.timeout_s:.0f} s", ended=False)
            chunk = os.read(fd, 65536)
            if not chunk:
                raise self._failure("stopped before answering")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", errors="replace").strip()

    def _receive_float(self) -> float:
        line = self._receive()
        try:
            return float(line)
        except ValueError:
            raise self._failure(f"answered {line[:200]!r} instead of a score", ended=False) from None

    # ------------------------------------------------------------------ public
    @property
    def running(self) -> bool:
        return self._finalizer.alive and self._process.poll() is None

    def score(self, references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> tuple[float, list[float]]:
        """Corpus METEOR and per-pair scores.

        Args:
            references: for each pair, one or more reference texts.
            hypotheses: one generated text per pair.

        Returns:
            ``(corpus_score, [score per pair])``; the corpus score is the jar's aggregate over all pairs
            (not the mean of the pair scores), as in pycocoevalcap.
        """
        if len(references) != len(hypotheses):
            raise ValueError(f"{len(references)} reference lists but {len(hypotheses)} hypotheses")
        with self._lock:
            if not self._finalizer.alive:
                raise MeteorError("METEOR process is closed")
            stats = []
            for refs, hypothesis in zip(references, hypotheses):
                hypothesis = _one_line(hypothesis).replace("  ", " ")
                self._send(" ||| ".join(["SCORE", *(_one_line(r) for r in refs), hypothesis]))
                stats.append(self._receive())
            self._send(" ||| ".join(["EVAL", *stats]))
            per_pair = [self._receive_float() for _ in stats]
            return self._receive_float(), per_pair

    def close(self) -> None:
        """Stop the JVM (idempotent)."""
        self._finalizer()

    def __enter__(self) -> MeteorJar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
