"""Ctrl-C while the JSON codec loads ends the program as Ctrl-C does, never as a crash: orjson's
module init segfaults when a signal handler raises inside it, so compact holds SIGINT and SIGTERM
for those few milliseconds."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

# Says when it starts importing, then imports; a KeyboardInterrupt ends Python with SIGINT itself.
_IMPORT = (
    "import base64, binascii, json, re, sys, gcptoken.errors; "  # all compact needs but the codec
    "sys.stdout.write('go'); sys.stdout.flush(); import gcptoken.jose.compact"
)


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no signal masks on this platform")
def test_ctrl_c_while_the_json_codec_loads_is_no_crash() -> None:
    for step in range(0, 50, 2):  # ms: somewhere inside orjson's init (~40 ms here), or just after it
        process = subprocess.Popen([sys.executable, "-c", _IMPORT], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdout is not None and process.stdout.read(2) == b"go"
        time.sleep(step / 1000)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode in (-signal.SIGINT, 0), (step, process.returncode, err[-500:])
