"""The selector: all compiled or all pure, chosen by environment, reported by `smtpx info`."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

import smtpx
from smtpx import _hot

from twins import NO_EXTENSIONS


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SMTPX_NO_EXTENSIONS", "SMTPX_REQUIRE_EXTENSIONS")
    }
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# Makes every compiled twin unimportable, as on a machine where the build was skipped.
BLOCK_COMPILED = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.startswith("smtpx._hot.") and name.endswith("_c"):
            raise ImportError(f"blocked {name}")
        return None
sys.meta_path.insert(0, Block())
"""


def test_the_expected_core_is_active() -> None:
    # A run whose compiled core failed to build fails here, unless pure mode was asked for.
    assert smtpx.IMPLEMENTATION == ("python" if NO_EXTENSIONS else "cython"), _hot.REASON


def test_all_names_come_from_one_kind_of_twin() -> None:
    suffix = "_c" if smtpx.IMPLEMENTATION == "cython" else "_py"
    for base, names in _hot.MODULES.items():
        loaded = importlib.import_module(f"smtpx._hot.{base}{suffix}")
        for name in names:
            value = getattr(_hot, name)
            if isinstance(value, int):  # a constant (a flag value): the loaded twin's
                assert value == getattr(loaded, name), name
            else:
                assert value.__module__ == loaded.__name__, name
    assert smtpx.Response is _hot.Response


def test_extension_paths_name_the_loaded_files() -> None:
    if smtpx.IMPLEMENTATION == "cython":
        assert len(_hot.EXTENSION_PATHS) == len(_hot.MODULES)
        assert all(os.path.isfile(p) for p in _hot.EXTENSION_PATHS)
    else:
        assert _hot.EXTENSION_PATHS == ()


def test_no_extensions_forces_pure() -> None:
    out = run_python(
        "import smtpx, smtpx._hot as h; print(smtpx.IMPLEMENTATION, '|', h.REASON)",
        SMTPX_NO_EXTENSIONS="1",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "python | SMTPX_NO_EXTENSIONS=1 is set"


def test_contradicting_switches_are_refused() -> None:
    out = run_python("import smtpx", SMTPX_NO_EXTENSIONS="1", SMTPX_REQUIRE_EXTENSIONS="1")
    assert out.returncode != 0
    assert "contradict each other" in out.stderr


def test_missing_compiled_core_falls_back_to_pure_with_a_reason() -> None:
    out = run_python(
        BLOCK_COMPILED
        + "import smtpx, smtpx._hot as h; print(smtpx.IMPLEMENTATION); print(h.REASON)"
    )
    assert out.returncode == 0, out.stderr
    implementation, reason = out.stdout.strip().splitlines()
    assert implementation == "python"
    assert reason.startswith("the compiled core could not be loaded (blocked smtpx._hot._")


def test_missing_compiled_core_with_require_fails() -> None:
    out = run_python(BLOCK_COMPILED + "import smtpx", SMTPX_REQUIRE_EXTENSIONS="1")
    assert out.returncode != 0
    assert "SMTPX_REQUIRE_EXTENSIONS=1 is set but the compiled core could not be loaded" in (
        out.stderr
    )


@pytest.mark.skipif(NO_EXTENSIONS, reason="needs the compiled core")
def test_require_extensions_loads_the_compiled_core() -> None:
    out = run_python("import smtpx; print(smtpx.IMPLEMENTATION)", SMTPX_REQUIRE_EXTENSIONS="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cython"


def test_info_command_reports_version_implementation_and_files() -> None:
    # the same switches as this process, so the child picks the same core
    same = {k: os.environ[k] for k in ("SMTPX_NO_EXTENSIONS",) if k in os.environ}
    out = run_python("from smtpx.cli import main; raise SystemExit(main(['info']))", **same)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"smtpx {smtpx.__version__}"
    assert f"implementation: {smtpx.IMPLEMENTATION}" in lines
    assert f"reason: {_hot.REASON}" in lines
    if smtpx.IMPLEMENTATION == "cython":
        assert lines[lines.index("extensions:") + 1 :] == [f"  {p}" for p in _hot.EXTENSION_PATHS]
    else:
        assert "extensions: none loaded" in lines


def test_python_dash_m_smtpx_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "smtpx", "info"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("smtpx ")
