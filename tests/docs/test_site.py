"""The documentation site (docs/ + mkdocs.yml) builds strictly and offline; README.md is the front
door: short, and every link in it points at a file of the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What a built page may load: its own files only (no CDN, no web fonts from elsewhere).
LOADED = re.compile(r"""(?:<script[^>]*\bsrc|<link[^>]*\bhref|<img[^>]*\bsrc)=["']([^"']+)["']""")
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)""")


def build(site: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_site_builds_strictly_with_every_page(tmp_path):
    site = tmp_path / "site"
    done = build(site, REPO / "mkdocs.yml")
    assert done.returncode == 0, done.stderr
    for page in sorted((REPO / "docs").glob("*.md")):
        assert (site / page.with_suffix(".html").name).is_file(), page.name
    assert (site / "images" / "console-fleet.png").is_file()
    operating = (site / "operating.html").read_text()
    assert 'src="images/console-fleet.png"' in operating


def test_the_site_loads_nothing_from_elsewhere(tmp_path):
    site = tmp_path / "site"
    assert build(site, REPO / "mkdocs.yml").returncode == 0
    outside = []
    for page in site.rglob("*.html"):
        outside += [(page.name, url) for url in LOADED.findall(page.read_text()) if "//" in url]
    for sheet in site.rglob("*.css"):
        outside += [(sheet.name, u) for u in CSS_URL.findall(sheet.read_text()) if "//" in u]
    assert outside == []


def test_a_broken_link_fails_the_build_and_a_page_outside_the_nav_does_not(tmp_path):
    """The strict build's settings, tried on a copy of the docs: a page nobody added to the nav
    yet builds; a link to a missing page, or to a missing anchor, fails."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for page in (REPO / "docs").glob("*.md"):
        (docs / page.name).write_text(page.read_text())
    (docs / "images").symlink_to(REPO / "docs" / "images")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        (REPO / "mkdocs.yml").read_text().replace("docs_dir: docs", f"docs_dir: {docs}")
    )

    (docs / "not-in-nav.md").write_text("# New\n\nSee [operating](operating.md#optimizer).\n")
    done = build(tmp_path / "a", config)
    assert done.returncode == 0, done.stderr
    assert "not-in-nav.md" in done.stderr  # reported, not refused

    (docs / "not-in-nav.md").write_text("# New\n\nSee [nothing](missing.md).\n")
    done = build(tmp_path / "b", config)
    assert done.returncode != 0 and "missing.md" in done.stderr

    (docs / "not-in-nav.md").write_text("# New\n\nSee [operating](operating.md#no-such-part).\n")
    done = build(tmp_path / "c", config)
    assert done.returncode != 0 and "no-such-part" in done.stderr


def test_the_readme_is_a_front_door_whose_links_resolve():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for command in ("edgectl up", "bash scripts/test.sh"):
        assert command in text
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert links
    for link in links:
        if "://" not in link:
            assert (REPO / link).exists(), link
    # The layout table names every benchmark and every service.
    for bench in sorted(p.name for p in (REPO / "bench").iterdir() if p.is_dir()):
        if bench != "__pycache__":
            assert f"`{bench}/`" in text, bench
    for service in sorted(p.name for p in (REPO / "services").iterdir() if p.is_dir()):
        if service != "__pycache__":
            assert f"`services/{service}/`" in text, service
