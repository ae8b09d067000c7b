"""Every reference a comment makes resolves inside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"(docs/[\w-]+\.md) §(\d+(?:\.\d+)?)")


def sources() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "osqsdk", "tests", "extensions", "README.md"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / p for p in listed if p.endswith((".py", ".proto", ".cpp", ".sh", ".md"))
            and (ROOT / p).exists()]


def test_every_cited_section_exists():
    anchors: dict[str, set[str]] = {}
    cited = 0
    for path in sources():
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for doc, section in CITATION.findall(line):
                if doc not in anchors:
                    assert (ROOT / doc).exists(), f"{path}:{lineno}: {doc} is not in the repo"
                    anchors[doc] = set(re.findall(r'<a id="s([\d.]+)"></a>',
                                                  (ROOT / doc).read_text()))
                assert section in anchors[doc], f"{path}:{lineno}: {doc} has no §{section}"
                cited += 1
    assert cited > 50  # the comments do cite the docs


def test_no_comment_cites_a_file_outside_the_repository():
    outside = re.compile(r"shared/reference|reference/(?:protocol|loki|lint_landscape)\.md|"
                         r"(?<![\w/])(?:protocol|loki|lint_landscape)\.md")
    for path in sources():
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if path.name != "test_docs.py":
                assert not outside.search(line), f"{path}:{lineno}: {line.strip()}"
