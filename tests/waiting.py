"""Polling helper for tests that wait on other processes (workers, coordinators, Ray actors)."""

import time


def wait_until(cond, timeout, what, interval=0.05):
    """Return ``cond()``'s first truthy value, or fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
