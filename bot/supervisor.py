"""``alignbot run``: the ingress and the worker as two child processes, kept running.

A user runs one command; each part still gets an interpreter of its own, and on the machine they
share the worker yields the CPU to the ingress (a higher niceness): an ack is due within 3 s,
the worker's work is not. A child that exits is started again after a pause that grows with each
restart; a child that keeps failing stops the whole run, with its exit code, rather than
flapping for ever.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: list[str]
    nice: int = 0  # added to the child's niceness: the lower its claim on a shared CPU
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)  # monotonic times of recent restarts

    def start(self, env: Mapping[str, str] | None) -> None:
        def in_child() -> None:
            if self.nice:
                os.nice(self.nice)
            die_with_parent()

        self.process = subprocess.Popen(self.argv, env=env, preexec_fn=in_child)
        log.info("started %s (pid %d)", self.name, self.process.pid)


def die_with_parent() -> None:
    """In a child process: a SIGTERM when its parent dies, even by SIGKILL, so no orphan keeps
    the ports (Linux's PR_SET_PDEATHSIG; elsewhere nothing)."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def alignbot_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot", *args]


def supervise(children: list[Child], *, env: Mapping[str, str] | None = None,
              max_restarts: int = 5, window: float = 60.0, grace: float = 10.0) -> int:
    """Run ``children`` until SIGTERM/SIGINT (exit 0) or until one exits more than
    ``max_restarts`` times within ``window`` seconds (its exit code)."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        for child in children:
            child.start(env)
        due: dict[str, float] = {}  # child name → when to start it again
        while not stopping:
            time.sleep(0.2)
            now = time.monotonic()
            for child in children:
                assert child.process is not None
                if child.name in due:
                    if now >= due[child.name]:
                        del due[child.name]
                        child.start(env)
                    continue
                exited = child.process.poll()
                if exited is None:
                    continue
                child.restarts = [t for t in child.restarts if now - t < window] + [now]
                if len(child.restarts) > max_restarts:
                    log.error("%s exited %d times within %.0f s (last exit code %d); stopping",
                              child.name, len(child.restarts), window, exited)
                    code = exited or 1
                    stopping = True
                    break
                pause = min(2 ** (len(child.restarts) - 1), 30)
                log.warning("%s exited with code %d; starting it again in %d s", child.name,
                            exited, pause)
                due[child.name] = now + pause
    finally:
        _stop_all(children, grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def _stop_all(children: list[Child], grace: float) -> None:
    running = [c.process for c in children if c.process is not None and c.process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
