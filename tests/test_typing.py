"""Run mypy on tests/typing/: the cases there must pass, and each rejected line fail as intended.

``pass_*.py`` files state what mypy infers with ``assert_type``; ``fail_*.py`` files hold
mistakes, each marked ``# type: ignore[code]``. Under the project's config (strict,
``warn_unused_ignores``) the whole directory must check clean, so a mistake that stops being
caught fails here. A copy of every ``fail_*.py`` with its ignores removed is checked in the same
mypy run, to see that each line fails with exactly the intended codes and nothing else does.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from mypy import api as mypy_api

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "tests" / "typing"
CASES = sorted(CASES_DIR.glob("*.py"))
FAIL_CASES = [p for p in CASES if p.name.startswith("fail_")]

IGNORE = re.compile(r"\s*# type: ignore\[(?P<codes>[a-z-]+(?:, *[a-z-]+)*)\]")
MYPY_LINE = re.compile(
    r"^(?P<path>.+?\.pyi?):(?P<line>\d+):(?:\d+:)? (?P<severity>error|warning|note): (?P<message>.*?)"
    r"(?:  \[(?P<code>[a-z-]+)\])?$"
)


@dataclass(frozen=True)
class Diagnostic:
    #: The file's name: mypy may report a cached module's errors under the path it had when
    #: cached (the copies below live in a new temporary directory each session).
    file: str
    line: int
    severity: str
    message: str
    code: str | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.message}  [{self.code}]"


@dataclass(frozen=True)
class MypyRun:
    diagnostics: list[Diagnostic]

    def errors_in(self, file: str) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.file == file and d.severity == "error"]


def _unignored_name(case: Path) -> str:
    return f"unignored_{case.name}"


def _expected_codes(path: Path) -> dict[int, set[str]]:
    """Line number -> the error codes its ``# type: ignore[...]`` names."""
    out: dict[int, set[str]] = {}
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if m := IGNORE.search(text):
            out[number] = {c.strip() for c in m["codes"].split(",")}
    return out


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory: pytest.TempPathFactory) -> MypyRun:
    """One mypy run over tests/typing/ plus the ignore-free copies of its fail_*.py files."""
    tmp = tmp_path_factory.mktemp("typing")
    copies = []
    for case in FAIL_CASES:
        copy = tmp / _unignored_name(case)
        # Same lines, so line numbers match the original.
        copy.write_text("\n".join(IGNORE.sub("", line) for line in case.read_text().splitlines()) + "\n")
        copies.append(copy)
    args = [
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--hide-column-numbers",
        "--hide-error-context",
        "--no-pretty",
        "--no-error-summary",
        "--show-error-codes",
        *(str(p) for p in CASES),
        *(str(p) for p in copies),
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # mypy_path in pyproject.toml is relative to the working directory
        stdout, stderr, status = mypy_api.run(args)
    assert status in (0, 1), f"mypy crashed (status {status}):\n{stderr}{stdout}"
    diagnostics = []
    for line in stdout.splitlines():
        m = MYPY_LINE.match(line)
        assert m is not None, f"unexpected mypy output line: {line!r}\n{stdout}"
        diagnostics.append(Diagnostic(Path(m["path"]).name, int(m["line"]), m["severity"], m["message"], m["code"]))
    return MypyRun(diagnostics)


def test_cases_exist_and_are_never_collected_by_pytest(pytestconfig: pytest.Config) -> None:
    assert any(p.name.startswith("pass_") for p in CASES)
    assert FAIL_CASES
    patterns = pytestconfig.getini("python_files")
    collected = [p.name for p in CASES if any(fnmatch.fnmatch(p.name, pat) for pat in patterns)]
    assert not collected, f"pytest would run these type-checking cases: {collected}"


def test_typing_cases_check_clean(mypy_run: MypyRun) -> None:
    """assert_type holds everywhere and every ``# type: ignore[code]`` is used."""
    copies = {_unignored_name(case) for case in FAIL_CASES}
    problems = [str(d) for d in mypy_run.diagnostics if d.file not in copies]
    assert not problems, "mypy on tests/typing/:\n" + "\n".join(problems)


@pytest.mark.parametrize("case", FAIL_CASES, ids=lambda p: p.name)
def test_each_rejected_line_fails_with_exactly_its_codes(mypy_run: MypyRun, case: Path) -> None:
    expected = _expected_codes(case)
    assert expected, f"{case.name} has no `# type: ignore[code]` lines"
    reported: dict[int, set[str]] = {}
    for d in mypy_run.errors_in(_unignored_name(case)):
        reported.setdefault(d.line, set()).add(d.code or "?")
    assert reported == expected


# Exact messages for a few mistakes: proof that each is rejected for the intended reason, and a
# record of what a user sees. Keyed by a snippet that occurs on exactly one line of the case.
PINNED = [
    pytest.param(
        "src >> fp.map(parse)",
        'Argument 1 to "map" has incompatible type "Callable[[str], int]"; expected "Callable[[Click], int]"',
        "arg-type",
        id="stage-mismatch",
    ),
    pytest.param(
        "src >> fp.map(lambda c: c.nope)",
        '"Click" has no attribute "nope"',
        "attr-defined",
        id="lambda-attribute",
    ),
    pytest.param(
        'floats >> fp.write_lines("out.txt")',
        'Unsupported operand types for >> ("Flow[float]" and "Sink[str]")',
        "operator",
        id="sink-type",
    ),
    pytest.param(
        'floats.to(fp.write_lines("out.txt"))',
        'Argument 1 to "to" of "Flow" has incompatible type "Sink[str]"; expected "Sink[float]"',
        "arg-type",
        id="sink-type-method",
    ),
    pytest.param(
        "wrong: fp.Flow[int] = strings",
        'Incompatible types in assignment (expression has type "Flow[str]", variable has type "Flow[int]")',
        "assignment",
        id="narrowed-filter-result",
    ),
    pytest.param(
        "fp.map(parse) >> fp.map(needs_click)",
        'Argument 1 to "map" has incompatible type "Callable[[Click], float]"; expected "Callable[[int], float]"',
        "arg-type",
        id="processor-processor",
    ),
    pytest.param(
        'fp.map(needs_click) >> fp.write_lines("out.txt")',
        'Unsupported operand types for >> ("Processor[Click, float]" and "Sink[str]")',
        "operator",
        id="processor-sink",
    ),
]


@pytest.mark.parametrize(("snippet", "message", "code"), PINNED)
def test_pinned_error_messages(mypy_run: MypyRun, snippet: str, message: str, code: str) -> None:
    case = CASES_DIR / "fail_graph.py"
    lines = [n for n, text in enumerate(case.read_text().splitlines(), 1) if IGNORE.sub("", text).strip() == snippet]
    assert len(lines) == 1, f"{snippet!r} must be exactly one line of {case.name}, found {len(lines)}"
    got = [(d.message, d.code) for d in mypy_run.errors_in(_unignored_name(case)) if d.line == lines[0]]
    assert got == [(message, code)]
