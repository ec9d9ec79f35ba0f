"""What the Python-driven suites (tests/python, tests/sync) share."""
import socket
import time


def wait_for(pred, timeout=20.0, what="a condition", interval=0.05):
    """Polls pred() until it returns something true, and returns that; the processes under
    test work asynchronously. AssertionError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def free_port():
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
