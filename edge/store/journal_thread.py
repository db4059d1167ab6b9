"""The one thread that runs every write transaction of the store, in the order they were handed
in. Besides ordinary work (a function to call), it takes journal groups; the last group handed
in stays *open* (the pipeline keeps adding decided taps to it) until the thread takes it, which
it does the moment the transaction before it has returned: the next group commit starts without
waiting for the event loop. A group is closed when the thread takes it, or when other work is
handed in behind it (so the thread's order stays the order things were handed in)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Generic, Protocol, TypeVar

_T = TypeVar("_T")


class Group(Protocol):
    open: bool


_G = TypeVar("_G", bound=Group)


class _Call:
    __slots__ = ("args", "fn", "future")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.future, self.fn, self.args = future, fn, args


class JournalThread(Executor, Generic[_G]):
    """A single-thread executor whose queue may end with an open journal group.

    ``run_group(group)`` runs in the thread for each group taken (it reports its outcome
    itself); ``submit`` runs any other function there, in order with the groups.
    """

    def __init__(self, run_group: Callable[[_G], None], name: str = "journal") -> None:
        self._run_group = run_group
        self._cond = threading.Condition()
        self._items: deque[_Call | _G] = deque()
        self._open: _G | None = None  # the last item, still taking entries
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False  # started by the first work handed in

    # ------------------------------------------------------------------ the event loop's side

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        if kwargs:
            raise TypeError("JournalThread.submit takes positional arguments only")
        future: Future[_T] = Future()
        with self._cond:
            if self._closing:
                raise RuntimeError("the journal thread is shut down")
            self._close_open()
            self._items.append(_Call(future, fn, args))
            self._start()
            self._cond.notify()
        return future

    def add_group(self, group: _G, *, keep_open: bool) -> None:
        """Queue ``group`` (closing the open one before it); ``keep_open``: it takes more
        entries (``extend_open``) until the thread takes it or something is queued behind."""
        with self._cond:
            if self._closing:
                raise RuntimeError("the journal thread is shut down")
            self._close_open()
            group.open = keep_open
            self._items.append(group)
            if keep_open:
                self._open = group
            self._start()
            self._cond.notify()

    def extend_open(self, group: _G, add: Callable[[_G], None]) -> bool:
        """``add(group)`` under the lock if ``group`` is still open (not taken yet, nothing
        queued behind it); False if it is closed (the caller starts a new group)."""
        with self._cond:
            if self._open is not group:
                return False
            add(group)
            return True

    def close_open(self) -> None:
        """No more entries join the open group (it is still committed, in its turn)."""
        with self._cond:
            self._close_open()

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def _close_open(self) -> None:
        if self._open is not None:
            self._open.open = False
            self._open = None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._closing = True
            self._close_open()
            self._cond.notify()
        if wait and self._started:
            self._thread.join()

    # ------------------------------------------------------------------------ the thread's side

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items:
                    return
                item = self._items.popleft()
                if isinstance(item, _Call):
                    if not item.future.set_running_or_notify_cancel():
                        continue
                elif self._open is item:  # taken: nothing joins it any more
                    self._close_open()
            if isinstance(item, _Call):
                try:
                    result = item.fn(*item.args)
                except BaseException as err:
                    item.future.set_exception(err)
                else:
                    item.future.set_result(result)
                del item
            else:
                self._run_group(item)
