"""A TCTI named by the environment (``GCPTOKEN_TPM_TCTI``, ``TPM2TOOLS_TCTI``, ``TPM2OPENSSL_TCTI``):
``name:config``, where a name with a slash is a shared library loaded by path. Loading it runs its
code, so it is held to the PKCS#11 module rule (keys.pkcs11_module: a regular file owned by root
or you, in directories only root or you can change) and the very file checked is what gets loaded
(``/proc/self/fd/N``). A plain name (``device``, ``swtpm``, ``tabrmd``) is the TSS's own
``libtss2-tcti-NAME.so`` from the system's library path."""

from __future__ import annotations

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.pkcs11_module import ModuleFile, open_module

__all__ = ["checked_tcti"]


def checked_tcti(tcti: str) -> tuple[str, ModuleFile | None]:
    """The TCTI to hand the TSS, and the library file to keep open until it is loaded (None for a
    plain name). HardwareKeyError for a library path that fails the rule."""
    name, colon, config = tcti.partition(":")
    if "/" not in name:
        return tcti, None
    try:
        library = open_module(name)
    except HardwareKeyError as exc:
        raise HardwareKeyError(str(exc).replace("PKCS#11 module", "TCTI library")) from None
    return f"{library.load_path}{colon}{config}", library
