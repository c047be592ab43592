"""uvicorn's h11 protocol with a read deadline, for `genre serve` (the [serve] extra).

A request's head and body must arrive within `read_timeout` seconds of the connection
opening (or of the previous response on a kept-alive connection); a connection that sends
slower is closed. uvicorn's own timeout_keep_alive is reset by every byte received, so
without this a client sending a byte a second holds a connection (and a slot of
limit_concurrency) for as long as it likes.

The deadline is read from $GENRE_SERVE_READ_TIMEOUT (seconds, default 10) when the module
is imported, so that every uvicorn worker process gets the value `genre serve` was given.
"""

from __future__ import annotations

import os

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

READ_TIMEOUT_ENV = "GENRE_SERVE_READ_TIMEOUT"
_READ = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)


def _env_timeout() -> float:
    try:
        value = float(os.environ.get(READ_TIMEOUT_ENV, "10"))
    except ValueError:
        return 10.0
    return value if value > 0 else 10.0


read_timeout = _env_timeout()


class TimedH11Protocol(H11Protocol):
    """H11Protocol closing connections whose request does not arrive in read_timeout s."""

    _deadline = None

    def _arm(self) -> None:
        self._disarm()
        if self.conn.their_state not in _READ:
            self._deadline = self.loop.call_later(read_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state in _READ:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()


__all__ = ["TimedH11Protocol"]
