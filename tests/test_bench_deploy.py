"""benchmarks/deploy.py: the one-line start-up profile read from ``-X importtime``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import load_benchmark


def load():  # type: ignore[no-untyped-def]
    return load_benchmark("deploy")


def test_import_profile_partitions_the_import_time_by_package() -> None:
    """Self times summed per top-level package add up to the top-level imports' cumulative
    times of the same output (each nested import is inside exactly one of them), and the
    packages the command imports are there, in every repeat."""
    deploy = load()
    argv = [sys.executable, "-c", "import json, email.mime.text, xml.dom.minidom"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-X", "importtime", *argv[1:]], env=env,
                          capture_output=True, text=True, check=True)
    per_package = deploy.package_self_times(done.stderr)
    assert {"json", "email", "xml"} <= per_package.keys()
    # unindented names are the imports nothing else triggered
    cumulative = sum(int(m.group(1)) for m in re.finditer(
        r"^import time:\s+\d+ \|\s+(\d+) \| (?=\S)", done.stderr, re.M))
    # to rounding: each line's two columns are whole microseconds, measured apart
    assert abs(sum(per_package.values()) * 1e6 - cumulative) <= 0.01 * cumulative
    imports, walls = deploy.import_profile(argv, env, reps=2)
    assert {"json", "email", "xml"} <= imports.keys()
    assert all(len(v) == 2 for v in imports.values()) and len(walls) == 2
    assert sum(v[0] for v in imports.values()) < walls[0]
