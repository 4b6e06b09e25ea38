"""The documentation's relative links and anchors resolve, and the README stays a front door.

Anchors follow GitHub's heading slugs (the algorithm of github-slugger, which GitHub uses for Markdown
headings): lowercase, every character that is not a letter, digit, space, hyphen or underscore removed, each
space a hyphen, and a repeated slug suffixed ``-1``, ``-2``... Headings inside fenced code blocks are not
headings. External links (``http(s)://``, ``mailto:``) are not fetched: this suite runs offline.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 300

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"`+[^`]*`+")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters and digits of any script, and _
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result: set[str] = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    # Explicit HTML anchors (<a name="x">, id="x") count too.
    result.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", path.read_text(encoding="utf-8")))
    return result


def links(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in INLINE_LINK.finditer(CODE_SPAN.sub("", line)):
            found.append((number, match.group(1)))
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not destination.exists():
            problems.append(f"{where}: {file_part} does not exist")
            continue
        if fragment and destination.suffix == ".md" and unquote(fragment) not in anchors(destination):
            problems.append(f"{where}: no heading in {destination.relative_to(root)} has the anchor #{fragment}")
    return problems


def test_slug_matches_githubs_rules() -> None:
    assert slug("Plan output (`--out DIR`)") == "plan-output---out-dir"
    heading = "Policies: `neurodock check` and the CrossGuard pack"
    assert slug(heading) == "policies-neurodock-check-and-the-crossguard-pack"
    assert slug("CI/CD: the review pipeline") == "cicd-the-review-pipeline"
    assert slug("10. Teardown") == "10-teardown"


def test_the_checker_finds_a_broken_file_link_and_a_broken_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## Real heading\n", encoding="utf-8")
    page.write_text(
        "# Page\n\n[ok](other.md#real-heading) [self](#page) [web](https://example.com/x#y)\n"
        "[gone](missing.md) [bad anchor](other.md#no-such-heading)\n"
        "```\n[in code](nowhere.md)\n```\n`[in a span](nowhere.md)`\n",
        encoding="utf-8")
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 2, problems
    assert "missing.md does not exist" in problems[0]
    assert "#no-such-heading" in problems[1]


def test_a_repeated_heading_gets_a_numbered_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A\n\n## Steps\n\n## Steps\n\n```\n## not a heading\n```\n", encoding="utf-8")
    assert anchors(page) == {"a", "steps", "steps-1"}


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = readme.count("\n") + (0 if readme.endswith("\n") else 1)
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/ (limit {README_MAX_LINES})"
    linked = {target.partition("#")[0] for _, target in links(ROOT / "README.md")}
    # Every page in docs/ is reachable from the README.
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"docs/{p.name}" not in linked]
    assert unlinked == [], f"docs pages the README does not link: {unlinked}"
