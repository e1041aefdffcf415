"""Mutual TLS with a workload key that stays in a TPM 2.0: OpenSSL's ``tpm2`` provider
(tpm2-openssl, Debian ``tpm2-openssl``) loaded into the OpenSSL library Python's ``ssl`` uses.

A ``TSS2 PRIVATE KEY`` PEM holds the key wrapped by the TPM (useless elsewhere). With the provider
in the process's default OpenSSL library context, ``SSLContext.load_cert_chain`` decodes it into a
key handle in the TPM and the handshake's CertificateVerify is signed there: no CPython internals,
only OpenSSL's public ``OSSL_PROVIDER_load`` and ``EVP_set_default_properties``. Loaded only when a
key file is a TPM key, once per process; the TPM is named by ``TPM2OPENSSL_TCTI`` (tpm2-openssl's
variable; unset, the TSS tries ``/dev/tpmrm0``, then ``/dev/tpm0``, then a simulator on port 2321).

Process-wide effect, on purpose and documented: TLS signature operations then prefer the TPM (a
TPM key only signs in its own provider; OpenSSL 3.0 fetches the signature implementation by the
default properties first, and ``?provider=default`` would export the TPM key's public half to the
default provider and fail, "rsa_ossl_private_encrypt: missing private key"). Digests, ciphers and
random numbers stay with the default provider (``tpm2.digest!=yes`` …, the properties the provider
declares), so only signatures and key handling touch the TPM.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from gcptoken.keys.hardware import HardwareKeyError
from gcptoken.untrusted import one_line

if TYPE_CHECKING:
    import ctypes

__all__ = ["TPM_KEY_PEM_HEADER", "TPM_TCTI_ENV", "is_tpm_key", "load_tpm_provider"]

# The PEM label of tpm2-openssl's and openssl_tpm2_engine's key files (the TSS2 key format,
# draft-bottomley-tpm2-keys).
TPM_KEY_PEM_HEADER = b"-----BEGIN TSS2 PRIVATE KEY-----"
TPM_TCTI_ENV = "TPM2OPENSSL_TCTI"
# Everything but signatures and keys from the default provider: the tpm2 provider marks its digests,
# ciphers and RNG with these properties (tpm2-openssl src/tpm2-provider.c); a TPM hash sequence per
# TLS transcript exhausts a TPM's few object slots ("out of memory for object contexts").
DEFAULT_PROPERTIES = b"?provider=tpm2,tpm2.digest!=yes,tpm2.cipher!=yes,tpm2.rand!=yes"
_OPENSSL_INFO_MODULES_DIR = 1003  # openssl/crypto.h
_lock = threading.Lock()
_loaded = False


def is_tpm_key(head: bytes) -> bool:
    """Whether a key file's first bytes are a TPM-wrapped key (a TSS2 PEM)."""
    return head.lstrip().startswith(TPM_KEY_PEM_HEADER)


def load_tpm_provider() -> None:
    """The tpm2 and default providers in the default library context of Python's OpenSSL, once.
    HardwareKeyError, one line, when OpenSSL, the provider or the TPM is not there."""
    global _loaded
    with _lock:
        if _loaded:
            return
        # The TSS logs every failed TCTI it tries to stderr; our error is the one line (TSS2_LOG
        # set by the user still wins, for debugging).
        os.environ.setdefault("TSS2_LOG", "all+none")
        import ctypes  # only for a TPM key

        library = _libcrypto()
        library.OSSL_PROVIDER_load.restype = ctypes.c_void_p
        library.OSSL_PROVIDER_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        library.EVP_set_default_properties.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        library.ERR_clear_error()
        if not library.OSSL_PROVIDER_load(None, b"tpm2"):
            library.ERR_clear_error()
            raise HardwareKeyError(_why_not_loaded(library))
        # Loading one provider explicitly stops OpenSSL loading "default" implicitly.
        if not library.OSSL_PROVIDER_load(None, b"default") or not library.EVP_set_default_properties(
            None, DEFAULT_PROPERTIES
        ):
            library.ERR_clear_error()
            raise HardwareKeyError("OpenSSL's default provider could not be loaded next to the tpm2 provider")
        _loaded = True


def _libcrypto() -> ctypes.CDLL:
    """The very libcrypto ``_ssl`` is linked to (a second copy would not see the provider)."""
    import _ssl
    import ctypes
    import ssl

    if ssl.OPENSSL_VERSION_INFO[0] < 3:
        raise HardwareKeyError(f"a TPM key needs OpenSSL 3 under Python's ssl module, not {ssl.OPENSSL_VERSION}")
    path = _mapped_libcrypto()
    if path is None:
        raise HardwareKeyError(
            f"a TPM key needs Python's ssl module linked to a shared OpenSSL 3 library ({_ssl.__file__} is not)"
        )
    library = ctypes.CDLL(path)
    library.OpenSSL_version_num.restype = ctypes.c_ulong
    if library.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
        raise HardwareKeyError(f"{path} is not the OpenSSL Python's ssl module uses ({ssl.OPENSSL_VERSION})")
    return library


def _mapped_libcrypto() -> str | None:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                name = line.rsplit(None, 1)[-1]
                if os.path.basename(name).startswith("libcrypto.so"):
                    return name
    except OSError:
        pass
    return None


def _why_not_loaded(library: ctypes.CDLL) -> str:
    import ctypes

    library.OPENSSL_info.restype = ctypes.c_char_p
    library.OPENSSL_info.argtypes = [ctypes.c_int]
    modules = os.environ.get("OPENSSL_MODULES") or (library.OPENSSL_info(_OPENSSL_INFO_MODULES_DIR) or b"").decode()
    if not os.path.exists(os.path.join(modules, "tpm2.so")):
        return (
            f"the workload key is a TPM key, and OpenSSL's tpm2 provider is not installed (no tpm2.so in "
            f"{one_line(modules)}; Debian and Ubuntu: apt install tpm2-openssl)"
        )
    tcti = os.environ.get(TPM_TCTI_ENV)
    where = f"{TPM_TCTI_ENV}={one_line(tcti)}" if tcti else f"/dev/tpmrm0 ({TPM_TCTI_ENV} is not set)"
    return f"the workload key is a TPM key, and no TPM answers at {where}"
