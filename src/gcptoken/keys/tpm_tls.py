"""Mutual TLS with a workload key that stays in a TPM 2.0: OpenSSL's ``tpm2`` provider
(tpm2-openssl, Debian ``tpm2-openssl``) in the OpenSSL library Python's ``ssl`` uses.

A ``TSS2 PRIVATE KEY`` PEM holds the key wrapped by the TPM (useless elsewhere). With the provider
loaded, ``SSLContext.load_cert_chain`` decodes it into a key handle in the TPM and the handshake's
CertificateVerify is signed there. The TPM is named by ``TPM2OPENSSL_TCTI`` (tpm2-openssl's
variable), else ``GCPTOKEN_TPM_TCTI`` or ``TPM2TOOLS_TCTI``; unset, the TSS tries ``/dev/tpmrm0``,
then ``/dev/tpm0``.

Process-wide effect, on purpose and documented: TLS signatures then prefer the TPM. A TPM key signs
only in its own provider, and OpenSSL 3.0 picks a signature implementation by the default
properties first: with ``?provider=default`` it exports the TPM key's public half to the default
provider and fails ("rsa_ossl_private_encrypt: missing private key"). Digests, ciphers and random
numbers stay with the default provider (``tpm2.digest!=yes`` …, properties the provider declares):
a TPM hash sequence per TLS transcript exhausts its few object slots.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.openssl_providers import load_providers, modules_dir
from gcptoken.keys.reference import PIN_ENV
from gcptoken.untrusted import one_line

__all__ = ["TPM_TCTI_ENV", "load_tpm_provider", "pin_callback"]

TPM_TCTI_ENV = "TPM2OPENSSL_TCTI"
DEFAULT_PROPERTIES = b"?provider=tpm2,tpm2.digest!=yes,tpm2.cipher!=yes,tpm2.rand!=yes"


def load_tpm_provider() -> None:
    """The tpm2 provider, once per process; HardwareKeyError (one line) without it or a TPM."""
    # The TSS logs each TCTI it fails to open to stderr; our error is the one line (a TSS2_LOG the
    # user sets still wins, for debugging).
    os.environ.setdefault("TSS2_LOG", "all+none")
    # The provider reads its own variable when it starts; gcptoken's TPM keys read GCPTOKEN_TPM_TCTI
    # (then tpm2-tools'): one setting serves both.
    for fallback in ("GCPTOKEN_TPM_TCTI", "TPM2TOOLS_TCTI"):
        if not os.environ.get(TPM_TCTI_ENV) and os.environ.get(fallback):
            os.environ[TPM_TCTI_ENV] = os.environ[fallback]
    tcti = os.environ.get(TPM_TCTI_ENV)
    if tcti:
        from gcptoken.keys.tcti import checked_tcti

        # The provider reads the variable when it starts: it loads the very library checked, whose
        # descriptor stays open (this is the TLS child process, which exits after one request).
        os.environ[TPM_TCTI_ENV], _library = checked_tcti(tcti)
    where = f"{TPM_TCTI_ENV}={one_line(tcti)}" if tcti else f"/dev/tpmrm0 ({TPM_TCTI_ENV} is not set)"
    load_providers(
        "tpm2",
        DEFAULT_PROPERTIES,
        missing=(
            "the workload key is a TPM key, and OpenSSL's tpm2 provider is not installed (no tpm2.so in "
            f"{one_line(modules_dir())}; Debian and Ubuntu: apt install tpm2-openssl)"
        ),
        unreachable=f"the workload key is a TPM key, and no TPM answers at {where}",
    )


def pin_callback(what: str) -> Callable[[], str]:
    """The PIN OpenSSL asks for when the TPM key has one (``load_cert_chain``'s password): from
    ``$GCPTOKEN_KEY_PIN``, never a prompt (this runs in the TLS child, which has no terminal of
    its own to ask on); without it, one line saying so."""

    def pin() -> str:
        value = os.environ.get(PIN_ENV, "")
        if not value:
            raise HardwareKeyError(f"{what} is a TPM key with a PIN: set {PIN_ENV}")
        return value

    return pin
