"""The environment is the lock: every pinned distribution is installed at its pinned version
(a test run on other versions proves nothing about the lock), and the lock satisfies the
ranges of pyproject.toml."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

from conftest import REPO
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = REPO / "requirements-lock.txt"


def locked() -> dict[str, str]:
    """Distribution -> pinned version, for the pins whose markers hold on this machine."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+))?", line)
        if match and (not match[3] or Marker(match[3].strip()).evaluate()):
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def test_every_pin_has_a_hash():
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n", 2)[2])
    for block in blocks:
        if re.match(r"^[A-Za-z0-9._-]+==", block):
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_installed_versions_are_the_locked_ones():
    wrong = []
    for name, version in sorted(locked().items()):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed.split("+")[0] != version.split("+")[0]:
            wrong.append(f"{name}: installed {installed}, locked {version}")
    assert not wrong, "environment differs from requirements-lock.txt:\n" + "\n".join(wrong)


def test_lock_satisfies_pyproject_ranges():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += [r for r in extra if not r.startswith("microgen")]
    pins = locked()
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name in pins:
            assert req.specifier.contains(pins[name], prereleases=True), (text, pins[name])


def test_environments_install_from_the_lock():
    """envs/*.yaml constrain pip by envs/constraints.txt, which is the lock without hashes."""
    pins = [
        re.sub(r"\s*\\$", "", line)
        for line in LOCK.read_text().splitlines()
        if re.match(r"^[A-Za-z0-9._-]+==", line)
    ]
    constraints = (REPO / "envs" / "constraints.txt").read_text().splitlines()
    assert [c for c in constraints if not c.startswith("#")] == pins
    for env in sorted((REPO / "envs").glob("*.yaml")):
        assert "- -c constraints.txt" in env.read_text(), env.name
