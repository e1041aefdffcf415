"""The one error for "Google would not deliver this call": the product's service agent may not mint
an ID token for the service account the user chose (or the account does not exist). Standard
library only, so the emulator, which raises it, and the senders, which report it, share it."""

from __future__ import annotations

from gcptoken.errors import RefusedError

__all__ = ["SenderRefusedError"]


class SenderRefusedError(RefusedError, PermissionError):
    """``product`` (Google's name for it, e.g. "Cloud Tasks") could not mint an ID token for
    ``service_account``, so Google would send nothing: the target receives no request, and the
    product records a failed attempt. ``status`` is what the emulator's admin API answers for it
    (404 unknown account, 403 not allowed)."""

    def __init__(self, product: str, service_account: str, reason: str, status: int) -> None:
        self.product, self.service_account, self.status = product, service_account, status
        super().__init__(f"{product} cannot mint an ID token for {service_account[:200]}: {reason}")
