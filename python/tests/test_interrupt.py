"""The GIL is released during computation, and Ctrl-C stops a long call."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mb_stats
from conftest import DEMO

#: About five minutes of work on two cores, in little memory.
LONG = dict(base="group=base", treatment="group=cda", effect=0.03, nboot=1000, simulations=100_000, seeds=[25])


def test_other_threads_run_during_a_call():
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.005)

    thread = threading.Thread(target=ticker)
    thread.start()
    start = time.perf_counter()
    mb_stats.bootstrap(DEMO, base="group=base", treatment="group=cda", nboot=1_000_000)
    elapsed = time.perf_counter() - start
    done.set()
    thread.join()
    during = [t for t in ticks if start < t < start + elapsed]
    assert elapsed > 0.2, "the call is too short to tell"
    # With the GIL held the ticker would not run at all during the call.
    assert len(during) > 0.2 * elapsed / 0.005, (len(during), elapsed)


def test_ctrl_c_interrupts_a_long_call():
    code = (
        "import sys, time, mb_stats\n"
        f"sys.stdout.write('started\\n'); sys.stdout.flush()\n"
        "start = time.perf_counter()\n"
        "try:\n"
        f"    mb_stats.power({str(DEMO)!r}, **{LONG!r})\n"
        "    print('finished')\n"
        "except KeyboardInterrupt:\n"
        "    print(f'interrupted after {time.perf_counter() - start:.2f}')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "started"
    time.sleep(1.5)
    sent = time.perf_counter()
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    stopped_after = time.perf_counter() - sent
    assert out.startswith("interrupted"), out
    assert stopped_after < 5, stopped_after
    # The next call in a fresh process is unaffected (the stop is per call).
    assert mb_stats.bootstrap(DEMO, nboot=50).shape[0] == 2
