"""A small Debug Adapter Protocol client over TCP: what VS Code does when it attaches to debugpy.

Enough of the protocol to prove a breakpoint works: initialize, attach, setBreakpoints,
configurationDone, wait for ``stopped``, stackTrace, scopes, variables, continue, disconnect.
Every wait is bounded.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any


class DapError(RuntimeError):
    """The debug adapter refused a request or did not answer in time."""


class DapClient:
    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.timeout = timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._socket = socket.create_connection((host, port), timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self._socket.settimeout(None)
        self._file = self._socket.makefile("rb")
        self._seq = 0
        self._responses: dict[int, queue.Queue[dict]] = {}
        self.events: queue.Queue[dict] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True, name="dap-reader").start()

    def _read(self) -> None:
        try:
            while True:
                length = 0
                while (line := self._file.readline().strip()) != b"":
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                if length == 0:
                    return
                message = json.loads(self._file.read(length))
                if message["type"] == "response":
                    self._responses[message["request_seq"]].put(message)
                elif message["type"] == "event":
                    self.events.put(message)
        except (OSError, ValueError):
            return

    def send(self, command: str, **arguments: Any) -> int:
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._responses[seq] = queue.Queue()
            body = json.dumps(
                {"seq": seq, "type": "request", "command": command, "arguments": arguments}
            ).encode()
            self._socket.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return seq

    def response(self, seq: int, timeout: float | None = None) -> dict:
        try:
            message = self._responses[seq].get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise DapError(f"no response to request {seq}") from None
        if not message.get("success"):
            raise DapError(f"{message['command']} failed: {message.get('message')}")
        return message.get("body") or {}

    def request(self, command: str, **arguments: Any) -> dict:
        return self.response(self.send(command, **arguments))

    def wait_event(self, name: str, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DapError(f"no {name!r} event")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event["event"] == name:
                return event.get("body") or {}

    def attach(
        self, breakpoints: dict[Path, list[int]], **arguments: Any
    ) -> dict[Path, list[dict]]:
        """The VS Code "Remote Attach" handshake, with breakpoints set before it completes.

        ``arguments`` are the attach request's; the default is what VS Code sends for the
        launch.json plldb prints (``justMyCode`` only: debugpy's own defaults for the rest,
        "stop all threads on suspend" among them).
        """
        self.request(
            "initialize",
            clientID="plldb-tests",
            adapterID="debugpy",
            pathFormat="path",
            linesStartAt1=True,
            columnsStartAt1=True,
        )
        attach = self.send("attach", **(arguments or {"justMyCode": True}))
        self.wait_event("initialized")
        verified = {
            path: self.request(
                "setBreakpoints",
                source={"path": str(path)},
                breakpoints=[{"line": line} for line in lines],
            )["breakpoints"]
            for path, lines in breakpoints.items()
        }
        self.request("configurationDone")
        self.response(attach)
        return verified

    def thread_names(self) -> list[str]:
        return [thread["name"] for thread in self.request("threads")["threads"]]

    def top_frame(self, thread_id: int) -> dict:
        return self.request("stackTrace", threadId=thread_id, levels=1)["stackFrames"][0]

    def locals_of(self, frame_id: int) -> dict[str, str]:
        """Name -> displayed value of the frame's local variables."""
        scopes = self.request("scopes", frameId=frame_id)["scopes"]
        local = next(s for s in scopes if s["name"].lower().startswith("locals"))
        variables = self.request("variables", variablesReference=local["variablesReference"])
        return {v["name"]: v["value"] for v in variables["variables"]}

    def close(self) -> None:
        try:
            self.request("disconnect", terminateDebuggee=False)
        except (DapError, OSError):
            pass
        self._socket.close()
