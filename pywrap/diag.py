"""Diagnostics: where warnings, errors and trace lines go, with the table/line context the reference adds.

Contract: code that finds a problem calls `warning(text)` / `error(text)`; the current context (set with
`in_context(file, line)` while a table line or its options are processed) is added by the sink. The texts
are the reference's own words. Sinks decide the format and destination:

- `StreamDiagnostics` (tcpdmatch, tcpdchk): `FILE, line N: warning: TEXT` on stderr (the reference sends
  these only to syslog, where most admins never look), `PROG: warning: TEXT` without context, plus the
  `matched` and `option` trace lines of the verbose tools.
- a syslog sink for tcpd arrives with tcpd itself.
"""

from __future__ import annotations

from pywrap.text import encode

TYPE_CHECKING = False  # typing costs start-up time on tcpd's per-connection path; only checkers need it
if TYPE_CHECKING:
    from typing import BinaryIO


class Diagnostics:
    def __init__(self) -> None:
        self.context: tuple[str, int] | None = None

    def in_context(self, file: str, line: int) -> _Context:
        """`with diag.in_context(file, line):` adds `file, line N:` to what is said inside."""
        return _Context(self, (file, line))

    def warning(self, text: str) -> None:
        self.emit("warning", text)

    def error(self, text: str) -> None:
        self.emit("error", text)

    def note(self, text: str) -> None:
        """Advice that is no fault (tcpdchk's notes); never changes an exit status."""
        self.emit("note", text)

    def info(self, text: str) -> None:
        """A notice the reference logs at LOG_INFO (e.g. `aclexec returned 1`)."""
        self.emit("info", text)

    def matched(self, file: str, line: int) -> None:
        """Trace: the rule at file/line matched (tools only)."""

    def option(self, keyword: str, value: str) -> None:
        """Trace: an option of the matched rule is being processed (tools only)."""

    def emit(self, kind: str, text: str) -> None:
        raise NotImplementedError


class _Context:
    """A plain context manager (contextlib costs start-up time on tcpd's per-connection path)."""

    __slots__ = ("diag", "context", "saved")

    def __init__(self, diag: Diagnostics, context: tuple[str, int]) -> None:
        self.diag, self.context, self.saved = diag, context, None

    def __enter__(self) -> None:
        self.saved, self.diag.context = self.diag.context, self.context

    def __exit__(self, *exc) -> None:
        self.diag.context = self.saved


class StreamDiagnostics(Diagnostics):
    def __init__(self, stream: BinaryIO, program: str, trace: bool = True) -> None:
        super().__init__()
        self.stream = stream
        self.program = program
        self.trace = trace
        self.counts = {"warning": 0, "error": 0}

    def _prefix(self) -> str:
        if self.context is None:
            return f"{self.program}: "
        return f"{self.context[0]}, line {self.context[1]}: "

    def _write(self, line: str) -> None:
        self.stream.write(encode(line + "\n"))
        self.stream.flush()

    def emit(self, kind: str, text: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        label = "" if kind == "info" else f"{kind}: "
        self._write(f"{self._prefix()}{label}{text}")

    def matched(self, file: str, line: int) -> None:
        if self.trace:
            self._write(f"{file}, line {line}: matched")

    def option(self, keyword: str, value: str) -> None:
        if self.trace:
            self._write(f"{self._prefix()}option: {keyword} {value}".rstrip())


class CollectingDiagnostics(Diagnostics):
    """Keeps (kind, context, text) tuples; for tests and for callers that log on their own."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, tuple[str, int] | None, str]] = []

    def emit(self, kind: str, text: str) -> None:
        self.records.append((kind, self.context, text))
