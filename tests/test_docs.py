"""The repository's documentation stands on its own.

A student clones this repository alone, so every design note it cites must live inside
it, under ``docs/``. These tests read the tracked files (``git ls-files``) and check:

* no file points at the old notes that lived beside the repository (``../shared/`` plus
  ``docs``; the string is assembled below so that this file does not match itself);
* every ``docs/<name>.md`` path cited anywhere exists (``../docs/...`` from a notebook too);
* a section cited by number (``docs/architectures.md §6``) or by quoted title
  (``docs/architectures.md, "Known quirks"``) exists in that page;
* relative Markdown links in ``README.md`` and ``docs/`` lead to files that exist;
* the mask and receptive-field pictures in ``docs/architectures.md`` are what the rules of
  :mod:`minecp.masks` draw.

The notebooks have their own tests, so that a failure there names the notebooks.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OLD_NOTES = "shared" + "/docs"          # the notes' old home, outside the repository
PAGES = ("README.md", "DEVELOPERS.md", "BENCHMARKS.md", "RESULTS.md", "docs", "minecp", "tests",
         "benchmarks", "assignments")
NOTEBOOKS = ("notebooks",)

# "docs/<name>.md", alone or as "../docs/<name>.md", but not "<something>/docs/<name>.md".
CITED_PAGE = re.compile(r"(?<![\w/.-])(?:\.\./)?docs/([A-Za-z0-9_-]+)\.md")
# "docs/architectures.md §6", "... Sec. 4", "... Secs. 2-5", "... §3–6"
CITED_NUMBER = re.compile(r"docs/([A-Za-z0-9_-]+)\.md,?\s*(?:§|Secs?\.\s*)(\d+)(?:\s*[-–]\s*(\d+))?")
# 'docs/architectures.md, "Known quirks"' and 'docs/architectures.md ("Masks at a glance")'
CITED_TITLE = re.compile(r"docs/([A-Za-z0-9_-]+)\.md(?:,\s*|\s*\()\"([A-Z][^\"\n]{0,60})\"")
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def tracked_files(*paths: str) -> list[Path]:
    """Tracked files under ``paths`` (skips the calling test outside a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", *paths], cwd=ROOT, capture_output=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"not a git checkout, cannot list tracked files ({e})")
    return [ROOT / p for p in out.decode().split("\0") if p]


def text_of(path: Path) -> str:
    """A file's text; a notebook's is the source and the text outputs of its cells."""
    raw = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix != ".ipynb":
        return raw
    parts = []
    for cell in json.loads(raw).get("cells", []):
        parts.append("".join(cell.get("source", [])))
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", [])))
            parts.append("".join(output.get("data", {}).get("text/plain", [])))
    return "\n".join(parts)


def headings(page: str) -> list[str]:
    """The Markdown headings of ``docs/<page>.md``, without the leading #'s."""
    text = (ROOT / "docs" / f"{page}.md").read_text(encoding="utf-8")
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


def problems_in(text: str, name: str) -> list[str]:
    """Every broken or outside reference in ``text`` (from file ``name``), as 'name: what' lines."""
    found = []
    if OLD_NOTES in text:
        found.append(f"{name}: cites {OLD_NOTES} (outside the repository); cite docs/ instead")
    for page in sorted(set(CITED_PAGE.findall(text))):
        if not (ROOT / "docs" / f"{page}.md").is_file():
            found.append(f"{name}: cites docs/{page}.md, which does not exist")
    for page, first, last in CITED_NUMBER.findall(text):
        if not (ROOT / "docs" / f"{page}.md").is_file():
            continue  # reported above
        numbered = {h.split(".")[0] for h in headings(page) if re.match(r"\d+\.", h)}
        for number in sorted({first, last or first}):
            if number not in numbered:
                found.append(f"{name}: cites docs/{page}.md section {number}, which has no heading "
                             f"'{number}. ...'")
    for page, title in CITED_TITLE.findall(text):
        if not (ROOT / "docs" / f"{page}.md").is_file():
            continue
        if not any(title.lower() in h.lower() for h in headings(page)):
            found.append(f"{name}: cites docs/{page}.md, \"{title}\", which is not a heading there")
    return found


def problems(files: list[Path]) -> list[str]:
    """:func:`problems_in` over tracked files."""
    return [line for path in files for line in problems_in(text_of(path), str(path.relative_to(ROOT)))]


def test_pages_and_code_cite_only_docs_inside_the_repository():
    files = tracked_files(*PAGES)
    assert any(p.name == "architectures.md" for p in files), "docs/architectures.md is not tracked"
    assert problems(files) == []


def test_notebooks_cite_only_docs_inside_the_repository():
    """Kept apart from the test above: a failure here is about the notebooks."""
    files = tracked_files(*NOTEBOOKS)
    assert problems(files) == []


def test_architectures_keeps_the_numbering_that_the_code_cites():
    titles = headings("architectures")
    for number in range(1, 7):
        assert any(t.startswith(f"{number}. ") for t in titles), f"no section {number} in architectures.md"
    for title in ("Masks at a glance", "Known quirks"):
        assert title in titles, f"no section {title!r} in architectures.md"


def test_relative_markdown_links_resolve():
    broken = []
    for path in tracked_files("README.md", "docs"):
        if path.suffix != ".md":
            continue
        for target in MARKDOWN_LINK.findall(path.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_checks_can_fail():
    """Each rule reports a planted mistake, so the tests above are not vacuous."""
    d = "docs" + "/"  # assembled, so that this file does not cite the planted mistakes itself
    bad = (f"See ../{OLD_NOTES}/ARCHITECTURES.md, {d}nonexistent.md, {d}architectures.md §9 "
           f'and {d}architectures.md, "No such section".')
    found = problems_in(bad, "bad.py")
    assert len(found) == 4, found
    assert [OLD_NOTES in found[0], f"{d}nonexistent.md" in found[1], "section 9" in found[2],
            "No such section" in found[3]] == [True] * 4
    good = 'docs/architectures.md §6, ../docs/testing.md, docs/architectures.md Secs. 2-5, ' \
           'docs/architectures.md, "Known quirks", docs/testing.md ("Evaluation")'
    assert problems_in(good, "good.py") == []


# -- the pictures in docs/architectures.md are the code's masks -------------------------------
def picture_blocks(section: str) -> list[dict[int, str]]:
    """The fenced blocks of ``section`` in docs/architectures.md, each as {column offset: picture}.

    A picture is a column of whitespace-separated tokens made only of 'x' and '.', one
    token per line at the same character offset; header lines hold no such tokens.
    """
    text = (ROOT / "docs" / "architectures.md").read_text(encoding="utf-8")
    start = re.search(rf"^##+ .*{re.escape(section)}.*$", text, flags=re.M).end()
    end = re.search(r"^## ", text[start:], flags=re.M)
    body = text[start:start + end.start()] if end else text[start:]
    blocks = []
    for block in re.findall(r"```\n(.*?)```", body, flags=re.S):
        columns: dict[int, list[str]] = {}
        for line in block.splitlines():
            for m in re.finditer(r"(?<!\S)[x.]+(?!\S)", line):
                columns.setdefault(m.start(), []).append(m.group())
        blocks.append({k: "\n".join(v) for k, v in sorted(columns.items())})
    return blocks


def test_mask_pictures_are_generated_by_the_rules():
    import torch

    from minecp.masks import (causal_rule, ecp_rule, enhanced_rule, mask_matrix, receptive_field_rule,
                              render, segmented_context_rule)

    main, others = picture_blocks("Masks at a glance")
    assert list(main.values()) == [render(mask_matrix(rule, 8)) for rule in (
        causal_rule(), ecp_rule(2), enhanced_rule(4), segmented_context_rule(4, 2))]
    assert list(others.values()) == [
        render(mask_matrix(enhanced_rule(4), torch.arange(4, 8), torch.arange(8))),  # PerceiverAR layer 1
        render(mask_matrix(causal_rule(), 4)),                                       # its later layers
        render(mask_matrix(enhanced_rule(2), 6)),                                    # compressed, C' = 2
        render(mask_matrix(segmented_context_rule(4, 2, 1), 8)),                     # shifted heads
    ]
    (fields,) = picture_blocks("6. ECP")
    assert list(fields.values()) == [render(receptive_field_rule(8, 2, layers)) for layers in (1, 2, 3)]
