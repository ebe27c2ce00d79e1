"""The CLI's WebSocket to `/ws`, read by a background thread.

Reading continuously matters twice: frames never pile up unread in the server's per-client queue
(which would get a quiet REPL disconnected as a slow client), and mesh events can be shown the
moment they arrive, even while the user is typing. While the REPL is `idle()` (at a prompt),
each frame goes straight to `on_idle_frame`; during a turn, frames wait in an inbox for
`frames()`.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

Frame = dict[str, Any]
IdleHandler = Callable[[Frame, bool], None]
"""(frame, redraw): `redraw` is True when a prompt is on screen and must be drawn again."""

_CLOSED = object()


class ChatConnectionError(Exception):
    """The WebSocket could not be opened; `refused` when the server answered but said no."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class Disconnected(Exception):
    """The open WebSocket closed."""


def _parse(raw: str | bytes) -> Frame | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class ChatSocket:
    def __init__(self, *, url: str, token: str | None, on_idle_frame: IdleHandler) -> None:
        self.url = url
        self._token = token
        self._on_idle_frame = on_idle_frame
        self._lock = threading.Lock()
        self._idle = False
        self._ws: ClientConnection | None = None
        self._inbox: queue.Queue[object] = queue.Queue()

    def open(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        try:
            ws = connect(self.url, additional_headers=headers, open_timeout=10, compression=None)
        except InvalidURI as exc:
            raise ChatConnectionError(f"not a WebSocket URL: {exc.uri}") from None
        except InvalidHandshake as exc:
            raise ChatConnectionError(
                f"the server refused the WebSocket: {exc}", refused=True
            ) from None
        except (OSError, TimeoutError) as exc:
            raise ChatConnectionError(f"cannot reach {self.url}: {exc}") from None
        inbox: queue.Queue[object] = queue.Queue()
        with self._lock:
            self._ws, self._inbox = ws, inbox
        threading.Thread(
            target=self._read, args=(ws, inbox), name="chat-ws-reader", daemon=True
        ).start()

    def _read(self, ws: ClientConnection, inbox: queue.Queue[object]) -> None:
        try:
            for raw in ws:
                frame = _parse(raw)
                if frame is None:
                    continue
                with self._lock:
                    if self._idle and inbox is self._inbox:
                        self._on_idle_frame(frame, True)
                    else:
                        inbox.put(frame)
        except (ConnectionClosed, OSError):
            pass
        finally:
            inbox.put(_CLOSED)

    def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None

    def send(self, frame: Frame) -> None:
        if self._ws is None:
            raise Disconnected
        try:
            self._ws.send(json.dumps(frame))
        except ConnectionClosed:
            raise Disconnected from None

    def frames(self, timeout: float) -> Iterator[Frame]:
        """Frames received within `timeout` seconds; Disconnected when the socket closed."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                item = self._inbox.get(timeout=remaining)
            except queue.Empty:
                return
            if item is _CLOSED:
                self._inbox.put(_CLOSED)  # stays closed for the next caller too
                raise Disconnected
            assert isinstance(item, dict)
            yield item

    @contextlib.contextmanager
    def idle(self) -> Iterator[None]:
        """While a prompt waits for the user: what is waiting is shown now, the rest as it comes."""
        with self._lock:
            self._idle = True
            closed = False
            while True:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is _CLOSED:
                    closed = True
                elif isinstance(item, dict):
                    self._on_idle_frame(item, False)
            if closed:
                self._inbox.put(_CLOSED)
        try:
            yield
        finally:
            with self._lock:
                self._idle = False
