"""The image installs the project with `pip install .` (not editable): a package
missing from pyproject's include list would be absent there while every test
here still passed from the source tree."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_INSTALLED = {"tests", "bench"}  # run from a checkout only


def test_every_top_level_package_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in NOT_INSTALLED)
    missing = [name for name in packages if not any(fnmatch.fnmatch(name, pattern) for pattern in include)]
    assert missing == [], f"add to [tool.setuptools] packages include in pyproject.toml: {missing}"


def test_every_feature_is_a_package_that_is_installed() -> None:
    from hotline.features import FEATURES

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    for feature in FEATURES:
        top = feature.split(".")[0]
        assert any(fnmatch.fnmatch(top, pattern) for pattern in include), feature
