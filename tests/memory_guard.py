"""A guard against a test run that eats the machine's memory.

The kernel's OOM killer ends such a run with no word of where (CI lost three runs so, in
test_fuzz, before the cause was found: warm-up threads piling up). Past the limit this prints
every thread's stack and the running test to the terminal and stops the run, so the failure
names its cause. The suite peaks near 4 GB; BIRTHDAY_TEST_MEMORY_LIMIT_GB sets the limit
(default 16, 0 turns the guard off).
"""

from __future__ import annotations

import _thread
import contextlib
import faulthandler
import os
import sys
import threading
import time

import pytest

PAGE = os.sysconf("SC_PAGE_SIZE")
_running = {"test": "(collecting)"}


def resident_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e9


def _watch(config: pytest.Config, limit: float) -> None:
    while resident_gb() <= limit:
        time.sleep(0.5)
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        sys.stderr.write(
            f"\n!!! memory guard: {resident_gb():.1f} GB resident, over the {limit:g} GB "
            f"limit, in {_running['test']}; every thread's stack:\n"
        )
        sys.stderr.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
    _thread.interrupt_main()  # pytest stops and reports, rather than the kernel killing it


def pytest_configure(config: pytest.Config) -> None:
    limit = float(os.environ.get("BIRTHDAY_TEST_MEMORY_LIMIT_GB", "16"))
    if limit > 0 and os.path.exists("/proc/self/statm"):
        guard = threading.Thread(target=_watch, args=(config, limit), daemon=True)
        guard.name = "memory-guard"
        guard.start()


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _running["test"] = nodeid
