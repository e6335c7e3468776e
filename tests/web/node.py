"""Running the pages' own modules under node, for the tests of web/static/js."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest


def run_node(*args: str) -> Any:
    """What a node script (a file, or `--input-type=module -e` code) printed, as JSON."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: apt-get install nodejs (the steering checks run real JS)")
    done = subprocess.run([node, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
