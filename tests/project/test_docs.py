"""The documentation: a short README that is the door to docs/, links and paths that resolve, and
command lines that compose as written (through Hydra's compose; nothing is trained)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS, REPO / "results" / "README.md"]
MAX_README_LINES = 250

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
#: A path into the repository as the text names it; not part of a longer path (/shared/x/freezeout/...).
REPO_PATH = re.compile(r"(?<![\w/$.~-])((?:freezeout|analysis|hydra_plugins|conf|sweeps|tests|examples|results)"
                       r"/[\w./-]*)")
#: A dotted module name of the project (freezeout.rundir.records.RunSummary, python -m freezeout.plan).
DOTTED = re.compile(r"(?<![\w./-])((?:freezeout|analysis)(?:\.\w+)+)")
#: A command whose arguments are a run's overrides: run.py, the plan and groups modules, and the
#: freezeout command's train, plan and groups (also as ``python -m freezeout``).
COMMAND = re.compile(r"^(?:python run\.py|python -m freezeout\.(?:plan|groups)"
                     r"|(?:python -m )?freezeout (?:train|plan|groups))(?=\s|$)")


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # no headings inside code blocks
    return {slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M)}


def bash_lines(path: Path, section: str | None = None) -> list[str]:
    """Lines of the ```bash blocks of ``path`` (of one ``## section`` only, when given)."""
    text = path.read_text()
    if section is not None:
        text = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def overrides_of(line: str) -> list[str] | None:
    """The Hydra overrides of a ``python run.py`` (or plan / groups, or ``freezeout train|plan|groups``)
    line, or None for a line that compose cannot stand for: a sweep (-m), torchrun, --cfg, a
    continued line, a shell variable."""
    command = COMMAND.match(line)
    if not command or line.endswith("\\") or "$" in line:
        return None
    words = shlex.split(line[command.end():], comments=True)  # after the command (and its subcommand)
    if {"-m", "--multirun", "--cfg", "--help"} & set(words) or any(w.startswith("--") for w in words):
        return None
    return words


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {t.split("#")[0] for t in LINK.findall(README.read_text())}
    assert DOCS, "docs/ holds no page"
    missing = [rel(p) for p in DOCS if rel(p) not in linked]
    assert not missing, f"docs pages not linked from README.md: {missing}"


@pytest.mark.parametrize("page", [rel(p) for p in PAGES])
def test_relative_links_resolve(page):
    path = REPO / page
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s), mailto
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {rel(dest)})")
    assert not broken, f"{page}: broken links: {broken}"


@pytest.mark.parametrize("page", [rel(p) for p in PAGES])
def test_paths_named_in_the_text_exist(page):
    text = (REPO / page).read_text()
    missing = sorted({p.rstrip(".,;:") for p in REPO_PATH.findall(text)
                      if not (REPO / p.rstrip(".,;:")).exists()})
    assert not missing, f"{page} names paths that do not exist: {missing}"


def _module_exists(dotted: str) -> bool:
    """``a.b.c`` names a module of the repo, or a name defined in one (``a.b`` with ``c`` in it)."""
    parts = dotted.split(".")
    for cut in (len(parts), len(parts) - 1):
        base = REPO.joinpath(*parts[:cut])
        for source in (base.with_suffix(".py"), base / "__init__.py"):
            if source.exists() and (cut == len(parts) or re.search(rf"\b{parts[-1]}\b", source.read_text())):
                return True
    return False


@pytest.mark.parametrize("page", [rel(p) for p in PAGES])
def test_module_names_in_the_text_exist(page):
    missing = sorted({m for m in DOTTED.findall((REPO / page).read_text()) if not _module_exists(m)})
    assert not missing, f"{page} names modules that do not exist: {missing}"


def test_the_checks_can_fail(tmp_path):
    """The link and path checks see a broken link, a missing heading and a missing module file."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n[a](nowhere.md) [b](#title) [c](#no-such) `freezeout/nothing_here.py`\n")
    assert anchors(page) == {"title"}
    assert REPO_PATH.findall(page.read_text()) == ["freezeout/nothing_here.py"]
    assert not _module_exists("freezeout.nothing_here")
    assert _module_exists("freezeout.rundir.records.RunSummary")
    assert overrides_of("python run.py -m sweeps=strategies") is None
    assert overrides_of("python run.py t_0=0.5   # a comment") == ["t_0=0.5"]
    assert overrides_of("freezeout train t_0=0.5") == ["t_0=0.5"]
    assert overrides_of("python -m freezeout groups model=timm") == ["model=timm"]
    assert overrides_of("python -m freezeout.plan sweeps=strategies") == ["sweeps=strategies"]
    assert overrides_of("freezeout train -m sweeps=strategies") is None
    assert overrides_of("freezeout analyze multirun/x") is None
    assert overrides_of("freezeout trainer t_0=0.5") is None


def _usage_commands() -> list[str]:
    return [line for line in bash_lines(README, "Usage") if overrides_of(line) is not None]


def _doc_commands() -> list[str]:
    lines = [line for page in DOCS for line in bash_lines(page)]
    return sorted({line for line in lines if overrides_of(line) is not None} - set(_usage_commands()))


def _compose_and_check(line: str) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from freezeout.config import compose_config

    overrides = overrides_of(line)
    cfg = compose_config(*overrides)
    for o in OverridesParser.create().parse_overrides(overrides):
        key = o.key_or_group
        if (REPO / "conf" / key).is_dir() or key in ("sweeps", "hydra") or key.startswith("hydra"):  # groups
            continue
        got = OmegaConf.select(cfg, key)
        got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
        assert got == o.value(), f"{line}: {key} composed to {got!r}, not {o.value()!r}"


def test_usage_block_has_commands():
    assert len(_usage_commands()) >= 8


def _id(line: str) -> str:
    return COMMAND.match(line).group(0) + ": " + " ".join(overrides_of(line))


@pytest.mark.parametrize("line", _usage_commands(), ids=_id)
def test_usage_line_composes(line):
    _compose_and_check(line)


@pytest.mark.parametrize("line", _doc_commands(), ids=_id)
def test_docs_command_composes(line):
    _compose_and_check(line)
