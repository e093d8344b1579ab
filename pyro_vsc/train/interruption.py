"""Stopping a run cleanly on SIGTERM or SIGINT: checkpoint at the next step boundary, then exit.

Cluster schedulers send SIGTERM before they kill a job (time limit, pre-emption, ``scancel``),
and Ctrl-C sends SIGINT. While :class:`StopSignals` is active, either signal only records that a
stop was asked for; the training loop sees it after the current step, writes a checkpoint and
raises :class:`TrainingInterrupted`. A second Ctrl-C aborts at once (the last checkpoint on disk
stays intact, as after any crash).
"""

import signal
import threading

#: The signals that ask a run to stop after saving.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """A run stopped on a signal after writing its checkpoint.

    :ivar int signum: the signal.
    :ivar int exit_status: the shell convention for a process ended by that signal, 128 + signum
        (143 for SIGTERM, 130 for SIGINT).
    """

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = int(signum)
        self.exit_status = 128 + self.signum


class StopSignals:
    """Context manager that turns SIGTERM/SIGINT into a request to stop (:attr:`received`).

    Handlers can only be installed from the main thread; elsewhere (a training run started
    from a worker thread) the signals keep their previous behaviour.
    """

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = tuple(signals)
        self.received = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without waiting for the step
        self.received = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
