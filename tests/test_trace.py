"""The traceability checker: it passes on this tree and fails on each kind of broken tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obscura_ref.cli import main
from obscura_ref.trace import check, render_trace, run

ROOT = Path(__file__).resolve().parent.parent

GOOD_SPEC = """# Sample
- **AB-1** (MUST, local) A node MUST do the thing.
- **AB-2** (MAY, session) A node MAY do the other thing.
"""
GOOD_CODE = "x = 1  # spec: AB-1\n"
GOOD_TEST = (
    "import pytest\n\n@pytest.mark.spec('AB-1')\ndef test_thing() -> None:\n    assert True\n"
)

# An enforced requirement that others can observe, cited by code and by a test.
OBSERVABLE_SPEC = GOOD_SPEC + "- **AB-3** (MUST, codec, session) A node MUST send the thing.\n"
OBSERVABLE_CODE = "x = 1  # spec: AB-1, AB-3\n"
OBSERVABLE_TEST = GOOD_TEST.replace("'AB-1'", "'AB-1', 'AB-3'")


def make_tree(
    tmp_path: Path,
    spec: str = GOOD_SPEC,
    code: str = GOOD_CODE,
    test: str = GOOD_TEST,
    vectors: object | None = None,
) -> Path:
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "sample.md").write_text(spec)
    (tmp_path / "obscura_ref").mkdir()
    (tmp_path / "obscura_ref" / "mod.py").write_text(code)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_sample.py").write_text(test)
    if vectors is not None:
        (tmp_path / "conformance" / "vectors").mkdir(parents=True)
        (tmp_path / "conformance" / "vectors" / "v.json").write_text(json.dumps(vectors))
    return tmp_path


def vectors_of(schema: object, *claims: list[str]) -> dict[str, object]:
    """A vector file of the given schema, case n claiming the n-th list of IDs."""
    cases = [{"tcId": n, "requirements": ids} for n, ids in enumerate(claims, 1)]
    return {"schema": schema, "testGroups": [{"tests": cases}]}


def test_this_project_passes_and_its_trace_table_is_current() -> None:
    report, current = run(ROOT, write=False)
    assert report.problems == []
    assert current, "spec/TRACE.md is stale: run `obscura-ref spec check`"


def test_a_well_formed_tree_passes(tmp_path: Path) -> None:
    report = check(make_tree(tmp_path))
    assert report.ok
    assert report.requirements["AB-1"].code == {"obscura_ref/mod.py:1"}
    assert report.requirements["AB-1"].tests == {"tests/test_sample.py::test_thing"}
    assert report.requirements["AB-1"].kinds == ("local",)
    assert report.requirements["AB-2"].kinds == ("session",)
    assert report.requirements["AB-2"].status == "missing citation and vector"


def test_a_must_without_a_citation_fails(tmp_path: Path) -> None:
    report = check(make_tree(tmp_path, code="x = 1\n"))
    assert report.problems == ["spec/sample.md:2: AB-1 (MUST) is missing citation"]


def test_a_must_without_a_test_or_vector_fails(tmp_path: Path) -> None:
    report = check(make_tree(tmp_path, test="def test_nothing() -> None:\n    pass\n"))
    assert report.problems == ["spec/sample.md:2: AB-1 (MUST) is missing test or vector"]


def test_an_observable_must_without_a_vector_fails_even_with_a_test(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, OBSERVABLE_SPEC, OBSERVABLE_CODE, OBSERVABLE_TEST)
    report = check(tree)
    assert report.requirements["AB-3"].tests == {"tests/test_sample.py::test_thing"}
    assert report.problems == ["spec/sample.md:4: AB-3 (MUST) is missing vector"]


def test_an_observable_must_without_citation_or_vector_fails(tmp_path: Path) -> None:
    report = check(make_tree(tmp_path, OBSERVABLE_SPEC, GOOD_CODE, GOOD_TEST))
    assert report.problems == ["spec/sample.md:4: AB-3 (MUST) is missing citation and vector"]


@pytest.mark.parametrize("schema", ["codec.schema.json", "session.schema.json"])
def test_a_vector_of_any_of_its_kinds_completes_an_observable_must(
    tmp_path: Path, schema: str
) -> None:
    vectors = vectors_of(schema, ["AB-3"])
    report = check(make_tree(tmp_path, OBSERVABLE_SPEC, OBSERVABLE_CODE, GOOD_TEST, vectors))
    assert report.ok, report.problems
    assert report.requirements["AB-3"].vectors == {"conformance/vectors/v.json#1"}
    assert report.requirements["AB-3"].status == "complete"


def test_a_vector_of_another_kind_is_a_problem_and_does_not_count(tmp_path: Path) -> None:
    vectors = vectors_of("decision.schema.json", ["AB-3"])
    report = check(make_tree(tmp_path, OBSERVABLE_SPEC, OBSERVABLE_CODE, GOOD_TEST, vectors))
    assert report.problems == [
        "conformance/vectors/v.json case 1: a decision case cannot claim AB-3, which is checked "
        "by codec, session",
        "spec/sample.md:4: AB-3 (MUST) is missing vector",
    ]
    assert report.requirements["AB-3"].vectors == set()


def test_no_vector_may_claim_a_local_requirement(tmp_path: Path) -> None:
    vectors = vectors_of("session.schema.json", ["AB-2"], ["AB-1"])
    report = check(make_tree(tmp_path, vectors=vectors))
    assert report.problems == [
        "conformance/vectors/v.json case 2: a session case cannot claim AB-1, which is checked "
        "by local"
    ]
    assert report.requirements["AB-2"].vectors == {"conformance/vectors/v.json#1"}


def test_a_local_must_is_complete_with_code_and_a_test(tmp_path: Path) -> None:
    report = check(make_tree(tmp_path))
    assert report.ok and report.requirements["AB-1"].status == "complete"


def test_an_observable_should_without_a_vector_is_reported_not_enforced(tmp_path: Path) -> None:
    spec = GOOD_SPEC + "- **AB-4** (SHOULD, decision) A node SHOULD choose well.\n"
    report = check(make_tree(tmp_path, spec=spec, code="# spec: AB-1, AB-4\n"))
    assert report.ok and report.requirements["AB-4"].status == "missing vector"


@pytest.mark.parametrize(
    ("document", "shown"),
    [
        (vectors_of("codecs.schema.json", ["AB-2"]), "'codecs.schema.json'"),
        ({"testGroups": [{"tests": [{"tcId": 1, "requirements": ["AB-2"]}]}]}, "None"),
        ([{"tcId": 1, "requirements": ["AB-2"]}], "None"),
    ],
)
def test_a_vector_file_without_a_known_schema_fails(
    tmp_path: Path, document: object, shown: str
) -> None:
    report = check(make_tree(tmp_path, vectors=document))
    assert report.problems == [
        f"conformance/vectors/v.json: unknown schema {shown}; a vector file names one of "
        "['codec.schema.json', 'decision.schema.json', 'session.schema.json']"
    ]
    assert report.requirements["AB-2"].vectors == set()  # its kind is unknown: it counts for none


@pytest.mark.parametrize(
    ("kinds", "message"),
    [
        ("", "AB-5 names no check kind after its level"),
        (", sessions", "AB-5 names unknown check kinds ['sessions']"),
        (", Codec", "AB-5 names unknown check kinds ['Codec']"),
        (", local, session", "AB-5 names local with other kinds; local stands alone"),
        (", session, codec", "AB-5 names session, codec; list each kind once, in the order"),
        (", codec, codec", "AB-5 names codec, codec; list each kind once, in the order"),
        (",codec", "AB-5 has ',codec' after its level"),
        (" codec", "AB-5 has ' codec' after its level"),
        (", codec,", "AB-5 names unknown check kinds ['codec,']"),
    ],
)
def test_a_requirement_without_well_formed_check_kinds_fails(
    tmp_path: Path, kinds: str, message: str
) -> None:
    spec = GOOD_SPEC + f"- **AB-5** (MUST{kinds}) A node MUST be observed.\n"
    report = check(make_tree(tmp_path, spec=spec))
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith(f"spec/sample.md:4: malformed requirement: {message}")
    assert "AB-5" not in report.requirements


@pytest.mark.parametrize(
    ("level", "kinds"),
    [
        ("MUST NOT", ("codec", "session", "decision")),
        ("MAY", ("decision",)),
        ("SHOULD NOT", ("local",)),
        ("MUST", ("session", "decision")),
    ],
)
def test_well_formed_check_kinds_are_read(
    tmp_path: Path, level: str, kinds: tuple[str, ...]
) -> None:
    spec = GOOD_SPEC + f"- **AB-5** ({level}, {', '.join(kinds)}) A node {level} be seen.\n"
    report = check(make_tree(tmp_path, spec=spec, code="# spec: AB-1, AB-5\n"))
    assert report.requirements["AB-5"].kinds == kinds
    assert report.requirements["AB-5"].level == level


@pytest.mark.parametrize(
    ("code", "test", "vectors", "where"),
    [
        ("x = 1  # spec: AB-1, AB-9\n", GOOD_TEST, None, "obscura_ref/mod.py:1: code"),
        (GOOD_CODE, GOOD_TEST.replace("'AB-1'", "'AB-1', 'ZZ-3'"), None, "test_thing: test"),
        (GOOD_CODE, GOOD_TEST, vectors_of("session.schema.json", ["AB-7"]), "v.json#1"),
    ],
)
def test_citing_an_undefined_id_fails(
    tmp_path: Path, code: str, test: str, vectors: object, where: str
) -> None:
    report = check(make_tree(tmp_path, code=code, test=test, vectors=vectors))
    assert len(report.problems) == 1
    assert where in report.problems[0] and "does not define" in report.problems[0]


def test_an_id_defined_twice_fails(tmp_path: Path) -> None:
    spec = GOOD_SPEC + "- **AB-1** (SHOULD, local) A node SHOULD also do this.\n"
    report = check(make_tree(tmp_path, spec=spec))
    assert report.problems == [
        "spec/sample.md:4: AB-1 is defined twice (first at spec/sample.md:2)"
    ]


@pytest.mark.parametrize(
    "line",
    [
        "- **AB-3** (MUST, local) A node does the thing.",  # keyword missing from the sentence
        "- **AB-3** (MUST, local) A node MUST do it and MAY log it.",  # two keywords
        "- **AB-3** (SHOULD, local) A node MUST do it.",  # level and sentence disagree
    ],
)
def test_a_sentence_must_carry_exactly_its_keyword(tmp_path: Path, line: str) -> None:
    report = check(make_tree(tmp_path, spec=GOOD_SPEC + line + "\n", code="# spec: AB-1, AB-3\n"))
    assert any("AB-3 is marked" in problem for problem in report.problems)


def test_a_malformed_requirement_line_fails(tmp_path: Path) -> None:
    report = check(make_tree(tmp_path, spec=GOOD_SPEC + "- **AB-3** MUST be formatted.\n"))
    assert report.problems == ["spec/sample.md:4: malformed requirement (see spec/README.md)"]


def test_spec_check_command_writes_trace_and_fails_on_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree(tmp_path)
    assert main(["spec", "check", "--root", str(root), "--no-write"]) == 1  # no TRACE.md yet
    assert main(["spec", "check", "--root", str(root)]) == 0
    trace = (root / "spec" / "TRACE.md").read_text()
    assert "| AB-1 | MUST | local | A node MUST do the thing. |" in trace
    assert "| AB-2 | MAY | session | A node MAY do the other thing. |" in trace
    assert "[obscura_ref/mod.py:1](../obscura_ref/mod.py#L1)" in trace
    assert trace == render_trace(check(root))
    (root / "obscura_ref" / "mod.py").write_text("x = 1\n")
    assert main(["spec", "check", "--root", str(root)]) == 1
    assert "AB-1 (MUST) is missing citation" in capsys.readouterr().err


def test_examples_in_code_fences_define_nothing(tmp_path: Path) -> None:
    spec = GOOD_SPEC + "```\n- **AB-1** (MUST, local) An example MUST not count.\n```\n"
    assert check(make_tree(tmp_path, spec=spec)).ok


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        # A keyword in prose: a normative sentence without an ID.
        ("Receivers MUST also do this.\n", "RFC 2119 keyword outside a requirement"),
        ("> **AB-5** (MUST, local) A quoted one MUST not count.\n", "malformed requirement"),
        ("1. **AB-5** (MUST, local) A numbered one MUST not count.\n", "malformed requirement"),
        ("**AB-5** (MUST, local) A bare paragraph MUST not count.\n", "malformed requirement"),
        ("- **AB-01** (MAY, local) A leading zero MAY not pass.\n", "malformed requirement"),
    ],
)
def test_normative_text_outside_the_one_form_is_reported(
    tmp_path: Path, extra: str, problem: str
) -> None:
    report = check(make_tree(tmp_path, spec=GOOD_SPEC + extra))
    assert len(report.problems) == 1 and problem in report.problems[0]


def test_keywords_in_code_spans_and_comments_are_not_normative(tmp_path: Path) -> None:
    spec = GOOD_SPEC + "The word `MUST` names a keyword.\n<!-- MUST in a\ncomment -->\n"
    assert check(make_tree(tmp_path, spec=spec)).ok


@pytest.mark.parametrize(
    "fenced",
    [
        "````\n```\n- **AB-9** (MUST, local) Inside a longer fence MUST not count.\n````\n",
        "~~~\n- **AB-9** (MUST, local) Inside tildes MUST not count.\n~~~\n",
    ],
)
def test_fences_are_matched_by_kind_and_length(tmp_path: Path, fenced: str) -> None:
    spec = GOOD_SPEC + fenced + "- **AB-3** (MAY, local) After the fence it MAY count.\n"
    report = check(make_tree(tmp_path, spec=spec))
    assert report.ok
    assert set(report.requirements) == {"AB-1", "AB-2", "AB-3"}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("x = 1  # spec: AB-1 AB-2\n", "malformed citation"),
        ('x = "# spec: AB-1"\n', "AB-1 (MUST) is missing citation"),  # a string, not a comment
        ("def broken(:\n", "cannot be read as Python"),
    ],
)
def test_citations_are_comments_of_one_form(tmp_path: Path, code: str, expected: str) -> None:
    report = check(make_tree(tmp_path, code=code))
    assert any(expected in problem for problem in report.problems), report.problems


def test_a_citation_may_carry_a_note(tmp_path: Path) -> None:
    report = check(make_tree(tmp_path, code="x = 1  # spec: AB-1, AB-2 (why, in brief)\n"))
    assert report.ok and report.requirements["AB-2"].code == {"obscura_ref/mod.py:1"}


def test_a_spec_mark_on_a_helper_checks_nothing(tmp_path: Path) -> None:
    test = GOOD_TEST + "\n\n@pytest.mark.spec('AB-1')\ndef helper() -> None:\n    pass\n"
    report = check(make_tree(tmp_path, test=test))
    assert len(report.problems) == 1 and "spec mark outside a test" in report.problems[0]


def test_marks_on_test_classes_and_pytestmark_count(tmp_path: Path) -> None:
    test = (
        "import pytest\n\npytestmark = pytest.mark.spec('AB-2')\n\n\n"
        "@pytest.mark.spec('AB-1')\nclass TestThing:\n    def test_it(self) -> None:\n"
        "        assert True\n"
    )
    report = check(make_tree(tmp_path, test=test))
    assert report.requirements["AB-1"].tests == {"tests/test_sample.py::TestThing"}
    assert report.requirements["AB-2"].tests == {"tests/test_sample.py"}


NOT_AN_INTEGER = b'{"schema": "codec.schema.json", "tests": [{"tcId": "1"}]}'


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"tests/test_bad.py": b"def (:\n"}, "cannot be parsed"),
        ({"spec/latin.md": "caf\xe9\n".encode("latin-1")}, "not UTF-8"),
        (
            {"conformance/vectors/v.json": NOT_AN_INTEGER},
            "is not an integer",
        ),
        ({"conformance/vectors/v.json": b"{nope"}, "not JSON"),
    ],
)
def test_unreadable_inputs_are_problems_not_crashes(
    tmp_path: Path, files: dict[str, bytes], expected: str
) -> None:
    root = make_tree(tmp_path)
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    report = check(root)
    assert any(expected in problem for problem in report.problems), report.problems
