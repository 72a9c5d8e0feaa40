"""The documentation site: it builds strictly, the reference covers every public name, links hold.

Four checks, from cheap to thorough:

- every ``rs.name`` the pages use exists;
- every relative link in ``README.md`` and ``docs/**/*.md`` names a file that exists (inside
  ``docs/`` for the site's pages) and, with an anchor, a heading or reference entry there;
- every public name (``resilient_scan.__all__`` and the ``__all__`` of each public module)
  has a ``::: name`` entry in a reference page, and every entry names something that exists;
- with mkdocs installed, ``mkdocs build --strict`` passes in a temporary folder, every
  entry is rendered with its anchor, the changelog page shows ``CHANGELOG.md``, and the
  anchors the link check computes are the ones the site has.
"""

from __future__ import annotations

import html
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

import resilient_scan as rs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
README = ROOT / "README.md"

#: The modules whose names are public API besides the package's own ``__all__``.
PUBLIC_MODULES = (
    "instrumentation",
    "testing",
    "discovery",
    "storage",
    "prometheus",
    "opentelemetry",
    "redis",
    "dask",
)

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HTML_ID = re.compile(r"""\bid=["']([^"']+)["']""")
DIRECTIVE = re.compile(r"^:::[ \t]+([\w.]+)[ \t]*$", re.MULTILINE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def prose_lines(path: Path) -> Iterator[str]:
    """The lines of *path* outside fenced code blocks."""
    fence: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        opening = FENCE.match(line)
        if fence is None:
            if opening:
                fence = opening.group(1)
            else:
                yield line
        elif opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
            fence = None


# --- anchors -----------------------------------------------------------------------------


def heading_text(raw: str) -> str:
    """What a heading renders to as plain text: markup gone, code spans kept verbatim."""
    raw = re.sub(r"\s*\{[^}]*\}\s*$", "", raw)  # attr_list: {#id .class}
    spans: list[str] = []

    def stash(match: re.Match[str]) -> str:
        spans.append(match.group(2).strip())
        return f"\x00{len(spans) - 1}\x00"

    text = CODE_SPAN.sub(stash, raw)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"(\*{1,3}|_{1,3})(?=\S)(.+?)(?<=\S)\1", r"\2", text)  # emphasis
    text = re.sub(r"\x00(\d+)\x00", lambda match: spans[int(match.group(1))], text)
    return html.unescape(text)


def mkdocs_slug(text: str) -> str:
    """Python-Markdown's ``toc`` slug, which the site's heading ids use."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def github_slug(text: str) -> str:
    """GitHub's heading anchors, for links followed on GitHub (the README's)."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def unique(slug: str, seen: set[str], style: str) -> str:
    if style == "github":
        candidate, number = slug, 0
        while candidate in seen:
            number += 1
            candidate = f"{slug}-{number}"
        return candidate
    while slug in seen or not slug:  # Python-Markdown: x, x_1, x_2, ...
        numbered = re.match(r"^(.*)_([0-9]+)$", slug)
        slug = f"{numbered[1]}_{int(numbered[2]) + 1}" if numbered else f"{slug}_1"
    return slug


def heading_anchors(path: Path, style: str) -> set[str]:
    """The ids of *path*'s headings (and explicit ids), as *style* renders them."""
    anchors: set[str] = set()
    for line in prose_lines(path):
        anchors.update(HTML_ID.findall(line))
        heading = ATX_HEADING.match(line)
        if not heading:
            continue
        explicit = re.search(r"\{[^}]*#([\w-]+)[^}]*\}\s*$", heading.group(2))
        if explicit:
            anchors.add(explicit.group(1))
            continue
        text = heading_text(heading.group(2))
        slug = github_slug(text) if style == "github" else mkdocs_slug(text)
        anchors.add(unique(slug, anchors, style))
    return anchors


def resolve(identifier: str) -> object:
    """The object a dotted name names: the longest importable module, then attributes."""
    parts = identifier.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            found = getattr(found, part)
        return found
    raise ImportError(identifier)


def exists(identifier: str) -> bool:
    try:
        resolve(identifier)
    except (ImportError, AttributeError):
        return False
    return True


def reference_anchor_exists(path: Path, anchor: str) -> bool:
    """Whether a reference page has *anchor*: an entry's id, or one of its members' ids."""
    for identifier in DIRECTIVE.findall(path.read_text(encoding="utf-8")):
        if anchor == identifier:
            return True
        if anchor.startswith(f"{identifier}."):
            return exists(anchor)
    return False


# --- links -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    source: Path
    target: str

    def __str__(self) -> str:
        return f"{self.source.relative_to(ROOT)}: ({self.target})"


def relative_links(path: Path) -> list[Link]:
    links: list[Link] = []
    for line in prose_lines(path):
        line_without_code = CODE_SPAN.sub("", line)
        targets = INLINE_LINK.findall(line_without_code)
        definition = LINK_DEFINITION.match(line_without_code)
        if definition:
            targets.append(definition.group(1))
        links.extend(Link(path, target) for target in targets if not SCHEME.match(target))
    return links


def broken(link: Link) -> str | None:
    """Why *link* does not resolve, or None when it does."""
    address, _, anchor = link.target.partition("#")
    target = (link.source.parent / address).resolve() if address else link.source
    in_site = link.source.is_relative_to(DOCS)
    if not address and not anchor:
        problem: str | None = "empty link"
    elif address.startswith("/"):
        problem = "absolute path: the site and GitHub resolve it differently"
    elif not target.exists():
        problem = "no such file"
    elif in_site and not target.is_relative_to(DOCS):
        problem = "outside docs/: not part of the site"
    else:
        problem = missing_anchor(target, anchor, "mkdocs" if in_site else "github")
    return problem


def missing_anchor(target: Path, anchor: str, style: str) -> str | None:
    """Why *target* has no *anchor* (nothing when the link has none)."""
    if not anchor:
        return None
    if target.suffix != ".md":
        return "an anchor into a file that is not a page"
    if target.is_relative_to(REFERENCE) and reference_anchor_exists(target, anchor):
        return None
    if anchor not in heading_anchors(target, style):
        return f"no heading with the anchor #{anchor} ({style} style) in {target.name}"
    return None


ALL_LINKS = [link for path in markdown_files() for link in relative_links(path)]


def test_the_link_check_finds_the_links_it_checks():
    # Guards the extraction itself: these links are in the pages for sure.
    targets = {(link.source.name, link.target) for link in ALL_LINKS}
    assert ("README.md", "docs/policies.md") in targets
    assert ("index.md", "scaling.md") in targets
    assert ("index.md", "reference/integrations.md#resilient_scan.redis.RedisBackend") in targets
    assert len(ALL_LINKS) > 50


def test_the_link_check_rejects_what_is_broken(tmp_path: Path):
    assert broken(Link(DOCS / "index.md", "no-such-page.md")) == "no such file"
    assert broken(Link(DOCS / "index.md", "../README.md")) == "outside docs/: not part of the site"
    assert broken(Link(DOCS / "index.md", "/policies.md")) is not None
    assert "#no-such-heading" in str(broken(Link(DOCS / "index.md", "policies.md#no-such-heading")))
    assert broken(Link(DOCS / "index.md", "policies.md#async-functions")) is None
    assert broken(Link(DOCS / "index.md", "#where-state-lives")) is None
    reference = "reference/policies.md#resilient_scan.CircuitBreaker"
    assert broken(Link(DOCS / "index.md", reference)) is None
    assert broken(Link(DOCS / "index.md", f"{reference}.state")) is None
    assert broken(Link(DOCS / "index.md", f"{reference}.no_such_member")) is not None
    page = tmp_path / "page.md"
    page.write_text("# A `code` title: *really*\n\n## Setup\n\n## Setup\n", encoding="utf-8")
    assert heading_anchors(page, "mkdocs") == {"a-code-title-really", "setup", "setup_1"}
    assert heading_anchors(page, "github") == {"a-code-title-really", "setup", "setup-1"}


@pytest.mark.parametrize("link", ALL_LINKS, ids=str)
def test_every_relative_link_resolves_anchors_included(link: Link):
    assert broken(link) is None, f"{link}: {broken(link)}"


def named_in_prose(path: Path) -> set[str]:
    """Every ``rs.name.attribute`` the page names, in prose or in code."""
    text = path.read_text(encoding="utf-8")
    return set(re.findall(r"(?<![\w.])rs((?:\.[A-Za-z_]\w*)+)", text))


def test_every_rs_name_the_pages_use_exists():
    missing = [
        f"{path.relative_to(ROOT)}: rs{dotted}"
        for path in markdown_files()
        for dotted in sorted(named_in_prose(path))
        if not exists(f"resilient_scan{dotted}")
    ]
    assert missing == []


# --- the reference -----------------------------------------------------------------------


def reference_entries() -> dict[str, Path]:
    """Every ``::: identifier`` of the reference pages, with its page."""
    entries: dict[str, Path] = {}
    for page in sorted(REFERENCE.glob("*.md")):
        for identifier in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            assert identifier not in entries, f"{identifier} is documented twice"
            entries[identifier] = page
    return entries


def public_modules() -> dict[str, ModuleType]:
    return {name: importlib.import_module(f"resilient_scan.{name}") for name in PUBLIC_MODULES}


def entry_for(module: str | None, name: str, entries: dict[str, Path]) -> str | None:
    """The reference entry documenting *name* (of *module*, or of the package), if any."""
    if module is not None:
        identifier = f"resilient_scan.{module}.{name}"
        return identifier if identifier in entries else None
    if f"resilient_scan.{name}" in entries:
        return f"resilient_scan.{name}"
    # A name the package re-exports from a public module may be documented there.
    value = getattr(rs, name)
    for other, namespace in public_modules().items():
        if name in namespace.__all__ and getattr(namespace, name) is value:
            return entry_for(other, name, entries)
    return None


def public_names() -> list[tuple[str | None, str]]:
    names: list[tuple[str | None, str]] = [(None, name) for name in rs.__all__]
    for module, namespace in public_modules().items():
        names.extend((module, name) for name in namespace.__all__)
    return names


def test_every_public_name_has_a_reference_entry():
    entries = reference_entries()
    missing = [
        f"resilient_scan.{module}.{name}" if module else f"resilient_scan.{name}"
        for module, name in public_names()
        if entry_for(module, name, entries) is None
    ]
    assert missing == []


def test_every_reference_entry_names_something_that_exists():
    unknown = [identifier for identifier in reference_entries() if not exists(identifier)]
    assert unknown == []


def test_the_changelog_page_includes_the_changelog_rather_than_copying_it():
    page = (DOCS / "changelog.md").read_text(encoding="utf-8")
    assert page.strip() == '--8<-- "CHANGELOG.md"'


# --- the built site ----------------------------------------------------------------------


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def require_mkdocs() -> None:
    """Skip without the docs tools, with the reason; fail under CI, which must have them."""
    needed = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
    missing = [name for name in needed if not installed(name)]
    if not missing:
        return
    message = (
        f"the docs tools are not installed ({', '.join(missing)}): "
        "pip install -e '.[docs]', or run python3 dev.py docs"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: CI must install them)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_mkdocs()
    folder = tmp_path_factory.mktemp("site")
    result = subprocess.run(  # noqa: S603 - builds this repository's own docs
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,  # the changelog's include is relative to the repository root
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    return folder


def built_page(site: Path, page: Path) -> str:
    relative = page.relative_to(DOCS).with_suffix("")
    built = site / "index.html" if relative.name == "index" else site / relative / "index.html"
    return built.read_text(encoding="utf-8")


def test_the_site_builds_strictly_with_every_page_of_docs(site: Path):
    for page in sorted(DOCS.rglob("*.md")):
        assert "</article>" in built_page(site, page), page


def test_every_reference_entry_is_rendered_with_its_anchor(site: Path):
    unrendered = []
    for identifier, page in reference_entries().items():
        text = built_page(site, page)
        obj = resolve(identifier)
        if isinstance(obj, ModuleType):
            # A module's entry shows its docstring; its names have entries of their own.
            summary = (obj.__doc__ or "").strip().splitlines()[0]
            rendered = html.escape(summary.split("`")[0], quote=False) in text
        else:
            rendered = f'id="{identifier}"' in text
        if not rendered:
            unrendered.append(identifier)
    assert unrendered == []


def test_the_changelog_page_shows_the_changelog(site: Path):
    text = built_page(site, DOCS / "changelog.md")
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    first_entry = next(line[2:] for line in changelog.splitlines() if line.startswith("- "))
    words = re.sub(r"[`*]", "", first_entry).split("(")[0].strip()
    assert words in html.unescape(re.sub(r"<[^>]+>", "", text))


def test_the_link_check_computes_the_anchors_the_site_has(site: Path):
    for page in sorted(DOCS.rglob("*.md")):
        ids = set(HTML_ID.findall(built_page(site, page)))
        computed = heading_anchors(page, "mkdocs")
        assert computed <= ids, (page.name, sorted(computed - ids))
