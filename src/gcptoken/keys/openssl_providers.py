"""OpenSSL 3 providers loaded into the very OpenSSL library Python's ``ssl`` module uses, so that
``SSLContext.load_cert_chain`` can decode a key file that only names a key held in hardware (a TPM
key) and the handshake signs with it there. Only OpenSSL's public API through
ctypes (``OSSL_PROVIDER_load``, ``EVP_set_default_properties``); never CPython's internals."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from gcptoken.errors import HardwareKeyError
from gcptoken.untrusted import one_line

if TYPE_CHECKING:
    import ctypes

__all__ = ["load_providers", "modules_dir"]

_OPENSSL_INFO_MODULES_DIR = 1003  # openssl/crypto.h
_lock = threading.Lock()
_loaded: set[str] = set()


def load_providers(name: str, properties: bytes | None, missing: str, unreachable: str) -> None:
    """Provider ``name`` and "default" in the default library context, once per process; then
    ``properties`` as the default property query when given. HardwareKeyError: ``missing`` when
    the provider's module is not installed, ``unreachable`` when it is but does not start (its
    device is not there); one line each."""
    with _lock:
        if name in _loaded:
            return
        library = _libcrypto()
        library.ERR_clear_error()
        if not library.OSSL_PROVIDER_load(None, name.encode()):
            library.ERR_clear_error()
            installed = os.path.exists(os.path.join(modules_dir(), f"{name}.so"))
            raise HardwareKeyError(unreachable if installed else missing)
        # Loading a provider explicitly stops OpenSSL loading "default" implicitly.
        if not library.OSSL_PROVIDER_load(None, b"default") or (
            properties is not None and not library.EVP_set_default_properties(None, properties)
        ):
            library.ERR_clear_error()
            raise HardwareKeyError(f"OpenSSL's default provider could not be loaded next to the {name} provider")
        _loaded.add(name)


def modules_dir() -> str:
    """Where OpenSSL looks for provider modules: ``OPENSSL_MODULES``, else its built-in directory."""
    import ctypes

    library = _libcrypto()
    library.OPENSSL_info.restype = ctypes.c_char_p
    library.OPENSSL_info.argtypes = [ctypes.c_int]
    built_in = (library.OPENSSL_info(_OPENSSL_INFO_MODULES_DIR) or b"").decode("utf-8", "replace")
    return os.environ.get("OPENSSL_MODULES") or built_in


def _libcrypto() -> ctypes.CDLL:
    """The libcrypto ``_ssl`` is linked to (a second copy would never see the providers)."""
    import _ssl
    import ctypes
    import ssl

    if ssl.OPENSSL_VERSION_INFO[0] < 3:
        raise HardwareKeyError(
            f"a key in hardware needs OpenSSL 3 under Python's ssl module, not {ssl.OPENSSL_VERSION}"
        )
    path = _mapped_libcrypto()
    if path is None:
        raise HardwareKeyError(
            f"a key in hardware needs Python's ssl module linked to a shared OpenSSL 3 ({_ssl.__file__} is not)"
        )
    library = ctypes.CDLL(path)
    library.OpenSSL_version_num.restype = ctypes.c_ulong
    if library.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
        raise HardwareKeyError(f"{one_line(path)} is not the OpenSSL Python's ssl module uses ({ssl.OPENSSL_VERSION})")
    library.OSSL_PROVIDER_load.restype = ctypes.c_void_p
    library.OSSL_PROVIDER_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    library.EVP_set_default_properties.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return library


def _mapped_libcrypto() -> str | None:
    """The libcrypto mapped into this process (Linux); None elsewhere or when _ssl is static."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                name = line.rsplit(None, 1)[-1]
                if os.path.basename(name).startswith("libcrypto.so"):
                    return name
    except OSError:
        pass
    return None
