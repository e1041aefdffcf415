"""The PIN of a key in hardware: from its environment variable, else asked for on the terminal.
Never from the credential file, never from the command line (other users can read argv)."""

from __future__ import annotations

import os

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.reference import MAX_PIN, HardwareReference, pin_from_env

__all__ = ["key_pin", "new_pin"]


def key_pin(reference: HardwareReference, *, prompt: bool = True) -> str | None:
    """The PIN for ``reference``: its variable, else (``prompt`` and a terminal) a prompt on
    /dev/tty, else None for a key that takes no PIN. A key that needs one and has none raises."""
    pin = pin_from_env(reference)
    if pin is None and reference.takes_pin and prompt:
        pin = _ask(reference)
    if pin is None:
        if reference.takes_pin:
            raise HardwareKeyError(
                f"the {reference.device}'s PIN is needed: set {reference.pin_env} (or run in a terminal to be asked)"
            )
        return None
    _check(pin, reference)
    return pin


def _check(pin: str, reference: HardwareReference) -> None:
    if len(pin) > MAX_PIN or "\x00" in pin:
        raise HardwareKeyError(f"{reference.pin_env} is not a PIN (over {MAX_PIN} characters or a NUL)")
    try:
        pin.encode("utf-8")
    except UnicodeEncodeError:  # bytes the locale could not decode (os.environ's surrogates)
        raise HardwareKeyError(f"{reference.pin_env} is not a PIN (not UTF-8 text)") from None


def _ask(reference: HardwareReference, note: str = "") -> str | None:
    # getpass reads /dev/tty itself, but falls back to stdin with a warning when there is none:
    # a credential helper's stdin belongs to its caller, so ask only where a terminal exists.
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    os.close(fd)
    import getpass

    try:
        answer = getpass.getpass(f"PIN for the {reference.device} key ({note or reference.pin_env + ' is not set'}): ")
    except (EOFError, OSError):
        return None
    return answer or None


def new_pin(reference: HardwareReference) -> str | None:
    """The auth value for a key about to be made: its variable, else asked for twice on the
    terminal; None where there is neither (the caller decides whether that is allowed)."""
    pin = os.environ.get(reference.pin_env, "") or None
    if pin is None:
        first = _ask(reference)
        if first is not None and _ask(reference, "again, to confirm") != first:
            raise HardwareKeyError("the two PINs typed differ")
        pin = first
    if pin is not None:
        _check(pin, reference)
    return pin
