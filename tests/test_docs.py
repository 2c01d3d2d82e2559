"""The documentation site (mkdocs.yml, docs/) and README.md: the strict build passes, every experiment and claim has
its row, examples/own_loop.py runs, and every command the README and the pages show in a fenced bash block is
checked cheaply — `python run.py ...` composed and validated as the command would be before any job runs (run.py's
own override check, then the settings' schemas), scripts with `--help` (and each documented option found in it),
make targets with `make -n`. Commands that cannot run here (a GPU machine's, SLURM's, the network's) are named once
in the output, with the reason, as a warning; none is skipped silently."""

from __future__ import annotations

import html
import json
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXPERIMENTS = ROOT / "conf" / "experiment"
PAPERS = ("orvieto", "camuto", "levi", "blanc")
sys.path.insert(0, str(DOCS))
import hooks  # noqa: E402  (docs/hooks.py: the generators the site is built with)

MKDOCS_ENV = {"NO_MKDOCS_2_WARNING": "1"}


def _run(command: list[str], timeout: float, **options) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **MKDOCS_ENV}, **options
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = _run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], timeout=120)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return out


def _page_text(site: Path, page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", (site / page / "index.html").read_text()))


# -- (a) the strict build -----------------------------------------------------------------------------------------


def test_the_site_builds_strictly_with_every_page_and_generated_block(site):
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, flags=re.M):
        assert (site / page.removesuffix(".md") / "index.html").is_file() or page == "index.md", page
    for built in site.rglob("*.html"):
        assert "<!-- noisereg:" not in built.read_text(), f"{built}: a generated block was not expanded"
    assert (site / "results" / "REPORT" / "index.html").is_file()


def test_no_table_is_cut_off_from_its_rows():
    """A blank line between a table's header and its rows makes Markdown print the rows as a paragraph of pipes
    (four tables of the paper pages had one); the strict build does not see it."""
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        cut = re.search(r"^\|(?:\s*:?-+:?\s*\|)+\n[ \t]*\n\|", page.read_text(), flags=re.M)
        assert cut is None, f"{page.relative_to(ROOT)}: a table's rows are cut off from its header by a blank line"


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """mkdocs.yml's validation settings turn a link to a missing page into a failure under --strict."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().split("\nhooks:")[0] + "\n")
    validation = yaml.safe_load(
        "validation:" + (ROOT / "mkdocs.yml").read_text().split("\nvalidation:")[1].split("\nmarkdown_extensions:")[0]
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [a page that is not there](missing.md).\n")
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump({"site_name": config["site_name"], **validation}))
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "missing.md" in done.stdout + done.stderr


# -- (b) every experiment and claim has its row -------------------------------------------------------------------


def _new_form(e: hooks.ExperimentFile) -> str:
    """`<paper>/<figure>`: the file's option after the move, or the one a flat file will move to."""
    if "/" in e.option:
        return e.option
    return f"{e.paper}/{e.option.removeprefix(e.paper + '_')}"


def test_every_experiment_has_its_row_in_its_papers_page_and_the_reference(site):
    found = hooks.experiments()
    assert len(found) >= 25, [e.option for e in found]
    reference = _page_text(site, "reference/experiments")
    for e in found:
        assert e.paper in PAPERS, e.path
        assert e.command in reference, f"{e.option}: no row in reference/experiments"
        source = (DOCS / f"{e.paper}.md").read_text()
        assert f"experiment={_new_form(e)}`" in source, f"{e.option}: no row in docs/{e.paper}.md's usage table"


def test_every_claim_has_its_row_and_each_papers_page_its_report_rows(site):
    claims = hooks._claims()
    assert claims
    reference = _page_text(site, "reference/claims")
    for claim in claims:
        assert " ".join(claim.quote.split())[:80] in " ".join(reference.split()), claim.label
    for row in hooks.report_rows():
        paper = hooks._row_paper(row)
        page = " ".join(_page_text(site, paper).split())
        claim_text = " ".join(html.unescape(re.sub(r"<[^>]+>|\\", "", row["claim"])).split())
        assert claim_text[:60] in page, f"{paper}: {claim_text[:60]}"
    shown = {p: len(hooks.figures(p)) for p in PAPERS}
    assert all(shown[p] > 0 for p in ("orvieto", "camuto", "levi", "blanc")), shown


def test_the_readme_is_short_and_its_results_table_is_results_report_md():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    assert "make install" in readme and "make test" in readme and "results/REPORT.md" in readme
    table = hooks.verdict_table("docs/").splitlines()
    assert "\n".join(table[2:]) in readme, "README's results table differs from results/REPORT.md's verdicts"
    assert hooks.report_summary().strip("*") in readme, "README's count line differs from results/REPORT.md's"


# -- (c) the example ----------------------------------------------------------------------------------------------


def test_the_own_loop_example_runs():
    example = ROOT / "examples" / "own_loop.py"
    assert len(example.read_text().splitlines()) <= 40
    done = _run([sys.executable, str(example)], timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if "Hessian trace" in line]
    assert [line.split()[0] for line in lines] == ["gd", "gd_noise", "layerwise", "label_noise", "gni"], done.stdout


# -- (d) every documented command ---------------------------------------------------------------------------------


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) of every line of every fenced bash block in README.md and docs/ (continuations joined)."""
    found = []
    for path in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        language, lines = None, []
        for line in path.read_text().splitlines():
            fence = re.match(r"^\s*```\s*([\w-]*)", line)
            if fence and language is None:
                language, lines = fence.group(1) or "text", []
            elif fence:
                if language in ("bash", "sh", "shell"):
                    body = "\n".join(lines).replace("\\\n", " ")
                    found += [
                        (str(path.relative_to(ROOT)), c.strip())
                        for c in body.splitlines()
                        if c.strip() and not c.strip().startswith("#")
                    ]
                language = None
            elif language is not None:
                lines.append(line)
    return found


# Run in one process (torch, Hydra and noisereg imported once): each `python run.py` command through run.py's own
# check of its overrides and the settings' schemas (noisereg.app.prepare), each script's --help.
CHECKER = r"""
import contextlib, io, json, runpy, sys
sys.path.insert(0, ".")
import run
from noisereg.app import prepare
results = []
for kind, argv, options in json.loads(sys.argv[1]):
    try:
        if kind == "run":
            arguments = run._hydra_arguments(argv)
            problem = run.override_problem(arguments)
            if problem is None:
                overrides = [a for a in arguments.overrides if not a.lstrip("+~").startswith("hydra")]
                prepare(run._compose(arguments, run._first_of_each_sweep(overrides)))
            results.append(problem)
        else:
            out = io.StringIO()
            sys.argv = [argv[0], "--help"]
            try:
                with contextlib.redirect_stdout(out):
                    runpy.run_path(argv[0], run_name="__main__")
                code = 0
            except SystemExit as stop:
                code = stop.code or 0
            missing = [o for o in options if o not in out.getvalue()]
            results.append(None if code == 0 and not missing else f"--help: exit {code}, options not in it: {missing}")
    except Exception as error:
        results.append(f"{type(error).__name__}: {error}")
print("CHECKED " + json.dumps(results))
"""

NOT_HERE = {  # first words of a command -> why it cannot run in CI
    "python3 -m pip install": "installs the GPU bundle's wheels on the GPU machine (clusters.md, step 2)",
    "bash scripts/gpu_check.sh": "needs the GPU machine's $OUT (checked here: the script exists and parses)",
    "tar czf $OUT": "packs results on the GPU machine ($OUT)",
}


def _old_form(argument: str, notes: list[str]) -> str:
    """`experiment=<paper>/<figure>` while conf/experiment/ is still flat: the file it will be, by its name."""
    match = re.fullmatch(r"(\+?)experiment=(\w+)/(\w+)", argument)
    if not match or (EXPERIMENTS / match.group(2) / f"{match.group(3)}.yaml").is_file():
        return argument
    paper, figure = match.group(2), match.group(3)
    name = figure if (EXPERIMENTS / f"{figure}.yaml").is_file() else f"{paper}_{figure}"
    notes.append(f"experiment={paper}/{figure} checked as +experiment={name} (conf/experiment/ is still flat)")
    return f"+experiment={name}"


def test_every_documented_command_composes_or_answers(tmp_path):
    commands = documented_commands()
    assert len(commands) >= 15
    checks, labels, failures, not_here, notes = [], [], [], [], []
    for where, command in commands:
        label = f"{where}: {command}"
        words = shlex.split(command, comments=True)
        if not words:
            continue
        reason = next((why for start, why in NOT_HERE.items() if command.startswith(start)), None)
        if reason:
            not_here.append(f"{command[:90]} — {reason}")
            if words[0] == "bash":
                done = _run(["bash", "-n", words[1]], timeout=30)
                if done.returncode != 0:
                    failures.append(f"{label}: bash -n: {done.stderr.strip()}")
            continue
        if words[0] == "make":
            done = _run(["make", "-n", *words[1:]], timeout=30)
            if done.returncode != 0:
                failures.append(f"{label}: make -n: {done.stderr.strip()[-300:]}")
            if words[1:2] in (["slurm-up"], ["slurm-down"]):
                not_here.append(
                    f"{command} — starts or stops a SLURM cluster as root (checked with make -n; "
                    "tests/test_slurm.py runs it where it can)"
                )
        elif words[0] == ".":
            if not (ROOT / words[1]).is_file() and not (ROOT / ".venv").is_dir():
                failures.append(f"{label}: {words[1]} is not there")
        elif words[:2] == ["python", "run.py"]:
            checks.append(("run", [_old_form(w, notes) for w in words[2:]], []))
            labels.append(label)
            if "hydra/launcher=slurm" in words:
                not_here.append(f"{command[:90]} — submits to SLURM (composed and validated here, not submitted)")
        elif words[0] == "python" and words[1].startswith("scripts/"):
            options = [w.split("=")[0] for w in words[2:] if w.startswith("--")]
            checks.append(("script", [words[1]], options))
            labels.append(label)
        elif words[:2] == ["python", "examples/own_loop.py"]:
            continue  # test_the_own_loop_example_runs runs it
        else:
            failures.append(f"{label}: no rule to check this command: add one to tests/test_docs.py")
    done = _run([sys.executable, "-c", CHECKER, json.dumps(checks)], timeout=150)
    answers = next((json.loads(line[8:]) for line in done.stdout.splitlines() if line.startswith("CHECKED ")), None)
    assert answers is not None, done.stderr[-3000:]
    failures += [f"{label}: {answer}" for label, answer in zip(labels, answers) if answer is not None]
    if not_here or notes:
        warnings.warn(
            "documented commands not run in CI, each checked as far as it can be here:\n  "
            + "\n  ".join(dict.fromkeys(not_here + notes))
        )
    assert not failures, "\n".join(failures)
