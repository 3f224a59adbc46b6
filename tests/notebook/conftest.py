"""Fixtures for the notebook suite: a Jupyter kernel from this interpreter, headless Chromium.

The kernel is the ``python3`` kernel spec written into a temporary ``JUPYTER_PATH``, pointing at
``sys.executable``, so the notebooks import flowpump from the environment running the tests
whatever other kernels the machine has. Chromium is Debian's ``chromium`` (``.ci/apt-packages.txt``);
tests that need it skip, naming it, where it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
#: Upper bound for one notebook (they take a few seconds each); only a guard against a hang.
CELL_TIMEOUT = 60


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Make ``python3`` the kernel of this interpreter; yields the kernel name."""
    pytest.importorskip("ipykernel", reason="the notebook tests need the test extra (ipykernel)")
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3 (flowpump tests)", "language": "python"})
    )
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "JUPYTER_PLATFORM_DIRS", "PYDEVD_DISABLE_FILE_VALIDATION")}
    # JUPYTER_PATH is searched first; platformdirs paths avoid jupyter_core's migration warning.
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root), *filter(None, [saved["JUPYTER_PATH"]])])
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # the kernel's debugger warns on frozen modules
    try:
        yield "python3"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def chromium_path() -> str | None:
    """The headless browser, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(html_file: Path, png: Path, width: int, height: int) -> None:
    """Load ``html_file`` in headless Chromium, offline, and save a screenshot."""
    browser = chromium_path()
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package `chromium`)")
    profile = png.parent / f"{png.stem}-profile"
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        # Offline: any host name fails at once, so a stray CDN link cannot stall the page.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        f"--window-size={width},{height}",
        html_file.as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    assert png.exists(), f"chromium wrote no screenshot: {' '.join(cmd)}"
