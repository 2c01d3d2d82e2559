"""MkDocs hooks (mkdocs.yml `hooks:`): the parts of the site that must not drift from the code are generated here,
at build time, from what the code and the committed results say.

- `<!-- noisereg:settings -->`: every setting of every config group, from the registries (src/noisereg/registry.py,
  filled by the packages noisereg.config imports) and the fixed schemas (noisereg.config.FIXED_GROUPS): name, type,
  default and the comment beside the field in its dataclass.
- `<!-- noisereg:experiments [paper] -->`: every experiment file under conf/experiment/ (any depth), its command,
  its records folder (the `name:` field), its bases and its sweep (`hydra.sweeper.params`).
- `<!-- noisereg:claims-all -->`: every claim registered in `noisereg.papers.CLAIMS`, with its verdict in
  results/REPORT.md.
- `<!-- noisereg:claims <paper> -->`, `<!-- noisereg:summary -->`: the rows of results/REPORT.md's claims table of one
  paper, and its count line.
- `<!-- noisereg:figures <paper> -->`: the committed figures results/<experiment>/*.png (results/<experiment>-<scale>/ where
  its runs are at several scales) of that paper's experiments.

results/REPORT.md and the figures are copied into the site at the same relative places (results/...), so the
report's own links to its figures work there too. `python docs/hooks.py` prints the generated pages (no MkDocs).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
EXPERIMENTS = ROOT / "conf" / "experiment"
PAPERS = ("orvieto", "camuto", "levi", "blanc")
MARKER = re.compile(r"<!--\s*noisereg:([a-z-]+)\s*([a-z]*)\s*-->")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# -- experiments --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ExperimentFile:
    path: Path
    paper: str
    option: str  # what follows `experiment=`: `orvieto/fig6_resnet`
    name: str  # the `name:` field: the records folder results/runs/<name>/ and the old `+experiment=<name>`
    bases: list[str]
    sweep: dict[str, str]
    summary: str

    @property
    def command(self) -> str:
        return f"python run.py -m experiment={self.option}"


@lru_cache(maxsize=1)
def experiments() -> tuple[ExperimentFile, ...]:
    import yaml

    found = []
    for path in sorted(EXPERIMENTS.rglob("*.yaml")):
        relative = path.relative_to(EXPERIMENTS)
        text = path.read_text()
        data = yaml.safe_load(text) or {}
        name = str(data.get("name", relative.stem))
        comments = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            line = line.lstrip("#").strip()
            if line.startswith("@package") or line.startswith("python run.py"):
                continue
            comments.append(line)
        summary = " ".join(comments)
        # its first sentence (not cut at "et al.", "Fig.", "Eq.", "App.", "Sec."), at most 300 characters
        first = (
            re.split(
                r"(?<!\bal)(?<!\bFig)(?<!\bFigs)(?<!\bEq)(?<!\bApp)(?<!\bSec)(?<!\be\.g)\.\s", summary, maxsplit=1
            )[0]
            if summary
            else ""
        )
        first = first if len(first) <= 300 else first[:297].rsplit(" ", 1)[0] + " …"
        bases = [str(d) for d in data.get("defaults", []) if isinstance(d, str) and d != "_self_"]
        bases += [f"{k}: {v}" for d in data.get("defaults", []) if isinstance(d, dict) for k, v in d.items()]
        params = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
        found.append(
            ExperimentFile(
                path,
                relative.parts[0],  # conf/experiment/<paper>/<figure>.yaml
                str(relative.with_suffix("")),
                name,
                bases,
                {str(k): str(v) for k, v in params.items()},
                first,
            )
        )
    return tuple(found)


def experiments_table(paper: str = "") -> str:
    rows = [
        "| paper | experiment | command | records folder (`name`) | bases | sweep (`hydra.sweeper.params`) |"
        " from its file |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in experiments():
        if paper and e.paper != paper:
            continue
        sweep = "<br>".join(f"`{k}={v}`" for k, v in e.sweep.items()) or "—"
        bases = "<br>".join(f"`{b}`" for b in e.bases) or "—"
        rows.append(
            f"| {e.paper} | `{e.option}` | `{e.command}` | `{e.name}` | {_cell(bases)} | {_cell(sweep)} | "
            f"{_cell(e.summary)} |"
        )
    return "\n".join(rows)


# -- settings -----------------------------------------------------------------------------------------------------


def _field_comments(schema: type) -> dict[str, str]:
    """The comment beside each field in the source of the dataclass and its bases (`sigma: float = 0.05  # ...`)."""
    comments: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            match = re.match(r"\s+(\w+)\s*:[^#]*?#\s*(.+)$", line)
            if match:
                comments[match.group(1)] = match.group(2).strip()
    return comments


def _type_name(annotation: object) -> str:
    if isinstance(annotation, str):
        return annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Union or type(annotation).__name__ == "UnionType":
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or None" if type(None) in args else "")
    if args:
        return f"{getattr(typing.get_origin(annotation), '__name__', 'list')}[{', '.join(map(_type_name, args))}]"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return repr(field.default)
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = field.default_factory()  # type: ignore[misc]
        return repr(value) if not dataclasses.is_dataclass(value) else "(below)"
    return "required"


def _schema_rows(prefix: str, schema: type) -> list[str]:
    rows, nested = [], []
    comments = _field_comments(schema)
    try:
        hints = typing.get_type_hints(schema)
    except Exception:  # a forward reference the module cannot resolve: the annotation as written
        hints = {}
    for field in dataclasses.fields(schema):
        if field.name.startswith("_"):
            continue
        kind = hints.get(field.name, field.type)
        key = f"{prefix}.{field.name}" if prefix else field.name
        rows.append(
            f"| `{key}` | {_cell(_type_name(kind))} | `{_cell(_default(field))}` | "
            f"{_cell(comments.get(field.name, ''))} |"
        )
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            nested.append((key, kind))
    for key, kind in nested:
        rows += _schema_rows(key, kind)
    return rows


HEADER = ["| setting | type | default | what it is (the comment in its schema) |", "|---|---|---|---|"]


def settings_page() -> str:
    from noisereg.config import FIXED_GROUPS, REGISTERED_GROUPS, JobSettings
    from noisereg.registry import PROBES

    out = ["### Top level", "", *HEADER, *_schema_rows("", JobSettings), ""]
    for group, schema in FIXED_GROUPS.items():
        out += [
            f"### `{group}`",
            "",
            f"Schema `{schema.__module__}.{schema.__name__}`.",
            "",
            *HEADER,
            *_schema_rows(group, schema),
            "",
        ]
    for group, registry in list(REGISTERED_GROUPS.items()) + [("probes", PROBES)]:
        out += [f"### `{group}`", "", f"Registered options: {', '.join(f'`{n}`' for n in registry.names())}.", ""]
        for name in registry.names():
            entry = registry.entry(name)
            where = f"{entry.schema.__module__}.{entry.schema.__name__}"
            key = f"probes.{name}" if group == "probes" else group
            choose = f"`+probes.{name}.every=N`" if group == "probes" else f"`{group}={name}`"
            out += [f"#### {choose}", "", f"Schema `{where}`.", "", *HEADER, *_schema_rows(key, entry.schema), ""]
    return "\n".join(out)


# -- claims and results -------------------------------------------------------------------------------------------


def _claims():
    from noisereg.papers import CLAIMS  # importing the papers registers their claims

    return CLAIMS


@lru_cache(maxsize=1)
def report_rows() -> tuple[dict[str, str], ...]:
    """The rows of results/REPORT.md's claims table, as dicts keyed by its header."""
    lines = (RESULTS / "REPORT.md").read_text().splitlines()
    rows, header = [], None
    for line in lines:
        if not line.startswith("|"):
            if header is not None and rows:
                break
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if header is None:
            if "verdict" in cells and "claim" in cells:
                header = cells
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        rows.append(dict(zip(header, cells)))
    return tuple(rows)


def report_summary() -> str:
    for line in (RESULTS / "REPORT.md").read_text().splitlines():
        if re.match(r"\*\*\d+ hold", line.strip()):
            return line.strip()
    return "(no count line in results/REPORT.md)"


VERDICTS = ("holds", "fails", "inconclusive", "not in regime", "not run")
PAPER_TITLES = {
    "orvieto": "Orvieto et al. 2023",
    "camuto": "Camuto et al. 2020",
    "levi": "Levi et al. 2022",
    "blanc": "Blanc et al. 2020",
}


def verdict_counts() -> dict[str, dict[str, int]]:
    """Per paper, how many of its claims in results/REPORT.md hold, fail, ... (a verdict's qualifier dropped)."""
    counts = {paper: dict.fromkeys(VERDICTS, 0) for paper in PAPERS}
    for row in report_rows():
        verdict = row.get("verdict", "").strip("* ").split(" (")[0]
        if _row_paper(row) in counts and verdict in VERDICTS:
            counts[_row_paper(row)][verdict] += 1
    return counts


def verdict_table(prefix: str = "") -> str:
    """The claims summary table of README.md and the home page."""
    out = [
        "| paper | claims | held | failed | inconclusive | not in regime | not run |",
        "|---|---|---|---|---|---|---|",
    ]
    for paper, counts in verdict_counts().items():
        out.append(
            f"| [{PAPER_TITLES[paper]}]({prefix}{paper}.md) | {sum(counts.values())} | "
            + " | ".join(str(counts[v]) for v in VERDICTS)
            + " |"
        )
    return "\n".join(out)


def _row_paper(row: dict[str, str]) -> str:
    return row.get("paper", "").split()[0].lower() if row.get("paper") else ""


def _linked(text: str, prefix: str) -> str:
    """REPORT.md's relative links (to results/<experiment>/...) as seen from a page at `prefix`."""
    return re.sub(r"\]\((?!https?:)([^)]+)\)", lambda m: f"]({prefix}results/{m.group(1)})", text)


def claims_table(paper: str, prefix: str = "") -> str:
    out = ["| figure | claim | numbers | scale | verdict |", "|---|---|---|---|---|"]
    for row in report_rows():
        if _row_paper(row) != paper:
            continue
        out.append(
            f"| {_linked(row.get('figure', ''), prefix)} | {row.get('claim', '')} | {row.get('numbers', '')} "
            f"| {row.get('scale', '')} | {row.get('verdict', '')} |"
        )
    return "\n".join(out)


def _verdict(claim) -> str:
    for row in report_rows():
        if f"({claim.experiment})" in row.get("figure", "") and claim.quote[:40].strip() in row.get("claim", ""):
            return row.get("verdict", "")
    return "not in results/REPORT.md"


def claims_reference() -> str:
    out = [
        "| # | paper | figure | experiment | claim (quoted) | its own gates | verdict in results/REPORT.md |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, claim in enumerate(_claims(), 1):
        gates = len(getattr(claim, "gates", ()) or ())
        out.append(
            f"| {i} | {_cell(claim.paper)} | {_cell(claim.figure)} | `{claim.experiment}` | "
            f"“{_cell(claim.quote)}” | {gates} | {_verdict(claim)} |"
        )
    return "\n".join(out)


def figures(paper: str, prefix: str = "") -> list[tuple[str, str]]:
    """(caption, path under results/) of each committed figure of that paper's experiments: results/<name>/, or
    results/<name>-<scale>/ for an experiment whose runs are at several scales (the report draws one figure each,
    captioned with its scale)."""
    from noisereg.figures.report import scale_figure_folders

    names = {e.name: e for e in experiments() if e.paper == paper}
    found = []
    for name, e in names.items():
        for folder in scale_figure_folders(RESULTS, name) or [RESULTS / name]:
            scale = folder.name.removeprefix(name).lstrip("-")
            for png in sorted(folder.glob("*.png")):
                caption = f"`{e.option}` at scale={scale}" if scale else f"`{e.option}`"
                found.append((caption, f"{prefix}results/{folder.name}/{png.name}"))
    return found


def figures_block(paper: str, prefix: str = "") -> str:
    shown = figures(paper, prefix)
    if not shown:
        return "*No committed figure of this paper's experiments in results/.*"
    return "\n\n".join(f"**{caption}**\n\n![{caption.replace('`', '')}]({path})" for caption, path in shown)


# -- MkDocs events ------------------------------------------------------------------------------------------------


def expand(markdown: str, prefix: str = "") -> str:
    def replace(match: re.Match) -> str:
        kind, argument = match.group(1), match.group(2)
        if kind == "settings":
            return settings_page()
        if kind == "experiments":
            return experiments_table(argument)
        if kind == "claims-all":
            return claims_reference()
        if kind == "claims":
            return claims_table(argument, prefix)
        if kind == "summary":
            return report_summary()
        if kind == "verdicts":
            return verdict_table(prefix)
        if kind == "figures":
            return figures_block(argument, prefix)
        raise ValueError(f"unknown generated block noisereg:{kind}")

    return MARKER.sub(replace, markdown)


def on_files(files, config):
    from mkdocs.structure.files import File

    report = RESULTS / "REPORT.md"
    if report.is_file():
        files.append(File.generated(config, "results/REPORT.md", abs_src_path=str(report)))
    for png in sorted(RESULTS.glob("*/*.png")):
        files.append(File.generated(config, f"results/{png.parent.name}/{png.name}", abs_src_path=str(png)))
    return files


def on_page_markdown(markdown, page, config, files):
    depth = page.file.src_uri.count("/")
    return expand(markdown, "../" * depth)


if __name__ == "__main__":
    for marker in sys.argv[1:] or ["<!-- noisereg:experiments -->"]:
        print(expand(marker))
