"""``python -m smtpx demo``: the README's first command, end to end on loopback."""

from __future__ import annotations

import re

import pytest

from smtpx.cli import main


def test_demo_sends_everything_through_windows_and_reports(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        ["demo", "--messages", "300", "--size", "256", "--connections", "2", "--window", "3"]
    )
    out, err = capsys.readouterr()
    assert code == 0, out
    assert "2 pooled connections, window 3" in out
    for number in (1, 2, 3):  # the first ones, one at a time, each with its result
        assert f"message {number}: 250 " in out
        assert f"accepted: reader{number}@smtpx.test; refused: 0" in out
    assert re.search(r"sent 300 messages .* msgs/s", out)
    assert "the sink received 300; failures: 0" in out
    assert "300/300" in err  # the progress bar reached the end


@pytest.mark.parametrize("window", ["0", "65"])
def test_demo_refuses_a_bad_window(capsys: pytest.CaptureFixture[str], window: str) -> None:
    assert main(["demo", "--messages", "10", "--window", window]) == 2
    assert "--window 1..64" in capsys.readouterr().out
