"""The README stays a front page and every document's links lead somewhere: a reader who follows a link from
the README or docs/ finds the file, and the front page carries no lab-journal words (run letters, issue numbers)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
HISTORY = re.compile(r"\b(?:run [A-H]\b|runs [A-H]-[A-H]\b|issue \d+|throwaway)", re.IGNORECASE)


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move details into docs/"
    text = "\n".join(lines)
    assert "make repro" in text and "make test" in text  # the two commands CI and users rely on


@pytest.mark.parametrize("doc", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    text = doc.read_text(encoding="utf-8")
    missing = [target for target in LINK.findall(text)
               if "://" not in target and not (doc.parent / target).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to files that do not exist: {missing}"


@pytest.mark.parametrize("doc", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_no_words_of_the_projects_history(doc):
    hits = [f"{doc.name}:{i}: {line.strip()[:80]}" for i, line in
            enumerate(doc.read_text(encoding="utf-8").splitlines(), 1) if HISTORY.search(line)]
    assert not hits, "run letters / issue numbers belong in commit messages, not in the documents:\n" + "\n".join(hits)
