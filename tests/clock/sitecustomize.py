"""Loaded (through PYTHONPATH) only by CI's moved-clock runs under Debian's ``faketime``.

libfaketime 0.9.10 with ``FAKETIME_DONT_FAKE_MONOTONIC=1`` hands the kernel a negative
deadline for ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``, which Python 3.11's
``time.sleep`` uses, so every sleep fails with EINVAL (wolfcw/libfaketime#426). Faking the
monotonic clock instead hangs every timed lock wait. So the monotonic clock stays real and
``time.sleep`` waits in ``select``, whose relative timeout libfaketime leaves alone.
"""

import os
import select
import time

if "faketime" in os.environ.get("LD_PRELOAD", ""):
    _real_sleep = time.sleep

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            select.select([], [], [], remaining)

    _sleep.__doc__ = _real_sleep.__doc__
    time.sleep = _sleep
