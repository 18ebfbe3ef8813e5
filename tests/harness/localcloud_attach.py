"""``plldb attach`` as a real subprocess, with its output watched (demo and e2e tests)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ATTACHED_MARKER = "attached:"
ATTACH_TIMEOUT_S = 90.0
DETACH_TIMEOUT_S = 60.0


def plldb_command() -> list[str]:
    """The installed ``plldb`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("plldb")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from plldb.cli import main; main()"]


class PlldbProcess:
    """``plldb <args>`` in ``cwd`` with the local cloud's environment (and no other AWS_*).

    It runs in a session of its own, so a terminal's Ctrl-C reaches it once, through
    :meth:`interrupt`. Every output line is kept in :attr:`output` and, with ``echo``,
    printed with that prefix as it comes.
    """

    def __init__(
        self, args: list[str], cwd: Path, environment: dict[str, str], echo: str | None = None
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(environment)
        env["COLUMNS"] = "110"
        env["PYTHONUNBUFFERED"] = "1"  # lines arrive when printed (benchmarks time them)
        self.echo = echo
        self.output: list[str] = []
        self.arrivals: list[float] = []  # time.monotonic() of each line of ``output``
        self.started = time.monotonic()
        self._lines: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(
            [*plldb_command(), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True, name="plldb-output")
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if self.echo is not None:
                print(f"{self.echo}{line}", flush=True)
            self.arrivals.append(time.monotonic())
            self.output.append(line)
            self._lines.put(line)

    def text(self) -> str:
        return "\n".join(self.output)

    def wait_for(self, marker: str, timeout: float = ATTACH_TIMEOUT_S) -> str:
        """The first new line containing ``marker``; fails early if plldb exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self._lines.empty():
                    raise RuntimeError(
                        f"plldb exited with {self.process.returncode} before {marker!r}:\n"
                        f"{self.text()}"
                    ) from None
                continue
            if marker in line:
                return line
        raise TimeoutError(f"plldb did not print {marker!r} within {timeout:.0f}s:\n{self.text()}")

    def interrupt(self, timeout: float = DETACH_TIMEOUT_S) -> int:
        """Ctrl-C, as a user presses it: plldb restores the stack and exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: no chance to restore anything (the server side must)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
