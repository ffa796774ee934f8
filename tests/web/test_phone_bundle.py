"""The committed /phone script is exactly what ``frontend/`` builds: ``npm ci`` from the lockfile and
the build, into a temporary copy, give the same bytes as ``ringwell/web/static/phone/phone.js``
(``make phone-bundle`` rebuilds it). So the bundle in the repository has no hand edits, comes only
from the locked npm packages, and carries their licenses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "frontend"
BUNDLE = REPO / "ringwell" / "web" / "static" / "phone" / "phone.js"


def _run(args: list[str], cwd: Path, timeout: float) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"


def test_the_committed_bundle_is_what_the_lockfile_builds(tmp_path):
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.fail("npm and node are needed to check the /phone bundle (Debian: apt-get install npm)")
    work = tmp_path / "frontend"
    work.mkdir()
    for name in ("package.json", "package-lock.json", "build.mjs"):
        shutil.copy2(FRONTEND / name, work / name)
    shutil.copytree(FRONTEND / "src", work / "src")
    _run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], work, 240)
    _run([node, "build.mjs", str(tmp_path / "out" / "phone.js")], work, 120)
    built = (tmp_path / "out" / "phone.js").read_bytes()
    assert built == BUNDLE.read_bytes(), "ringwell/web/static/phone/phone.js is stale: run make phone-bundle"


def test_the_bundle_names_its_packages_and_their_licenses():
    lock = json.loads((FRONTEND / "package-lock.json").read_text())
    jssip = lock["packages"]["node_modules/jssip"]
    declared = json.loads((FRONTEND / "package.json").read_text())["dependencies"]["jssip"]
    assert jssip["version"] == declared  # pinned exactly
    head = BUNDLE.read_text()[:20000]
    assert head.startswith("/*!")
    assert f"jssip {jssip['version']} (MIT license)" in head
    assert "Permission is hereby granted, free of charge" in head
    for name, entry in lock["packages"].items():
        if name and not entry.get("dev") and not entry.get("optional"):
            package = name.removeprefix("node_modules/")
            assert f" {package} {entry['version']} (" in head, package
