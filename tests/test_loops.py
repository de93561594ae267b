"""The --event-loop option: async tests really run on the loop that was asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


async def loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_async_tests_run_on_the_requested_loop(
    run_async: Callable[[Coroutine[Any, Any, str]], str], event_loop_name: str
) -> None:
    module = run_async(loop_module())
    if event_loop_name == "uvloop":
        assert module.startswith("uvloop")
    else:
        assert module.startswith("asyncio")
