"""RSA keys inside a TPM 2.0 (tpm2-pytss over a TCTI: ``/dev/tpmrm0``, swtpm, …): open one named
by a ``TpmReference`` and sign RS256 in the TPM, or generate one there. The private key is created
by the TPM and leaves it only wrapped by the storage key (a blob no other TPM can load).

Imported only to sign or generate: tpm2-pytss is the ``[tpm]`` extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar

from gcptoken.errors import HardwareKeyError
from gcptoken.extras import require
from gcptoken.keys.tpm_reference import OWNER_HIERARCHY, TpmReference, encode_key_file, handle_reference

require("tpm", "gcptoken.keys.tpm")

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import (
    ESYS_TR,
    TPM2_ALG,
    TPM2_CAP,
    TPM2_RC,
    TPM2_RH,
    TPM2_SE,
    TPM2_ST,
    TPMA_SESSION,
)
from tpm2_pytss.types import (
    TPM2B_DATA,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPML_PCR_SELECTION,
    TPMS_SCHEME_HASH,
    TPMS_SENSITIVE_CREATE,
    TPMT_SIG_SCHEME,
    TPMT_SYM_DEF,
    TPMT_TK_HASHCHECK,
    TPMU_SIG_SCHEME,
    TPMU_SYM_KEY_BITS,
    TPMU_SYM_MODE,
)

from gcptoken.keys.tpm_objects import (
    check_signing_key,
    signing_template,
    spki,
    storage_template,
    unmarshal_private,
    unmarshal_public,
)

__all__ = ["TpmKey", "generate_key", "open_key", "tcti_from_env"]

_T = TypeVar("_T")
_DEFAULT_TCTI = "device:/dev/tpmrm0"  # the kernel's resource manager: several users, no daemon
_MAX_AUTH = 32  # an authValue is at most the nameAlg's digest size (SHA-256), Part 1 §19.6.4.3

# TPM 2.0 Part 2, §6.6: what the TPM answers for a wrong authValue, a locked-out dictionary-attack
# counter, an object whose integrity check fails under this parent, a handle with nothing there.
_BAD_AUTH = (TPM2_RC.AUTH_FAIL, TPM2_RC.BAD_AUTH)
_FOREIGN_BLOB = (TPM2_RC.INTEGRITY, TPM2_RC.SIZE, TPM2_RC.VALUE, TPM2_RC.KEY, TPM2_RC.SYMMETRIC, TPM2_RC.BINDING)


def tcti_from_env() -> str:
    """``$GCPTOKEN_TPM_TCTI``, else tpm2-tools' ``$TPM2TOOLS_TCTI``, else ``device:/dev/tpmrm0``."""
    return os.environ.get("GCPTOKEN_TPM_TCTI") or os.environ.get("TPM2TOOLS_TCTI") or _DEFAULT_TCTI


def _auth_bytes(auth: str | None) -> bytes:
    value = (auth or "").encode()
    if len(value) > _MAX_AUTH:
        raise HardwareKeyError(f"a TPM key's PIN is at most {_MAX_AUTH} bytes (UTF-8)")
    return value


_WRONG_PIN = "wrong PIN for the TPM key (the TPM counts this failure)"
# tpm2-openssl, tpm2-pytss and gcptoken all recreate the storage key with an empty owner password.
_OWNER_AUTH = "the TPM's owner hierarchy has a password; TPM keys here need it empty (tpm2_changeauth -c owner)"


def _explain(error: TSS2_Exception, doing: str, wrong_auth: str = _WRONG_PIN) -> HardwareKeyError:
    """One line for a TPM error: the cause a user can act on, never an auth value."""
    code = error.error
    if code in _BAD_AUTH:
        return HardwareKeyError(f"{doing}: {wrong_auth}")
    if code == TPM2_RC.LOCKOUT:
        return HardwareKeyError(f"{doing}: the TPM is locked out after too many wrong PINs (dictionary-attack lockout)")
    if code in _FOREIGN_BLOB:
        return HardwareKeyError(f"{doing}: the TPM refused the key blob (made by another TPM, or under another parent)")
    if code in (TPM2_RC.OBJECT_MEMORY, TPM2_RC.SESSION_MEMORY):
        return HardwareKeyError(
            f"{doing}: the TPM has no room for another object; without a resource manager (/dev/tpmrm0)"
            " objects a killed process left stay loaded: tpm2_flushcontext -t -s frees them"
        )
    if code == TPM2_RC.NV_DEFINED:
        return HardwareKeyError(f"{doing}: that persistent handle already holds a key")
    if code == TPM2_RC.HANDLE:
        return HardwareKeyError(f"{doing}: there is no key at that TPM handle")
    return HardwareKeyError(f"{doing}: {error}")


def _connect(tcti: str) -> ESAPI:
    # tpm2-tss logs its own WARNING/ERROR lines to stderr; ours is the one line. TSS2_LOG set by
    # the user (to debug) wins.
    os.environ.setdefault("TSS2_LOG", "all+none")
    from gcptoken.keys.tcti import checked_tcti

    loadable, library = checked_tcti(tcti)
    try:
        return ESAPI(loadable)
    except Exception as error:  # the TCTI loader raises TSS2_Exception, or TypeError/ValueError on bad config
        raise HardwareKeyError(f"no TPM reachable through TCTI {tcti!r} ({type(error).__name__}: {error})") from None
    finally:
        if library is not None:
            library.close()  # loaded (dlopen holds the file) or not: the descriptor has done its job


@contextlib.contextmanager
def _tpm_errors(doing: str, wrong_auth: str = _WRONG_PIN) -> Iterator[None]:
    try:
        yield
    except TSS2_Exception as error:
        raise _explain(error, doing, wrong_auth) from None


def _has_ecc(esys: ESAPI) -> bool:
    more, data = True, None
    found: list[int] = []
    while more:
        more, data = esys.get_capability(TPM2_CAP.ALGS, found[-1] + 1 if found else 0, 128)
        algorithms = data.data.algorithms
        found += [int(algorithms.algProperties[i].alg) for i in range(algorithms.count)]
        more = more and bool(algorithms.count)
    return int(TPM2_ALG.ECC) in found


def _parent(esys: ESAPI, handle: int, *, rsa_parent: bool) -> tuple[ESYS_TR, bool]:
    """The parent's ESYS_TR, and whether we created it (then the caller flushes it)."""
    if handle == OWNER_HIERARCHY:
        with _tpm_errors("creating the TPM's storage key", _OWNER_AUTH):
            template = storage_template(ecc=not rsa_parent and _has_ecc(esys))
            primary, *_ = esys.create_primary(
                TPM2B_SENSITIVE_CREATE(),
                template,
                ESYS_TR.OWNER,
                TPM2B_DATA(),
                TPML_PCR_SELECTION(),
            )
        return primary, True
    if 0x81000000 <= handle <= 0x81FFFFFF:
        with _tpm_errors(f"opening the parent key 0x{handle:08x}"):
            return esys.tr_from_tpmpublic(handle), False
    raise HardwareKeyError(f"unsupported TPM key parent 0x{handle:08x} (the owner hierarchy or a persistent key)")


def _salted_session(esys: ESAPI, salt_key: ESYS_TR, *, encrypt_first_parameter: bool = False) -> ESYS_TR:
    """An HMAC session salted with one of this TPM's storage keys: a PIN crosses the bus neither in
    clear (as in a password session) nor as an HMAC an eavesdropper could test guesses against;
    with ``encrypt_first_parameter``, a command's first parameter (TPM2_Create's inSensitive, the
    new key's PIN) travels AES-encrypted (Part 1, §19.6 and §21)."""
    aes = TPMT_SYM_DEF(algorithm=TPM2_ALG.AES, keyBits=TPMU_SYM_KEY_BITS(aes=128), mode=TPMU_SYM_MODE(aes=TPM2_ALG.CFB))
    with _tpm_errors("starting a TPM session"):
        session = esys.start_auth_session(salt_key, ESYS_TR.NONE, TPM2_SE.HMAC, aes, TPM2_ALG.SHA256)
        attributes = TPMA_SESSION.CONTINUESESSION
        if encrypt_first_parameter:
            attributes |= TPMA_SESSION.DECRYPT
        esys.trsess_set_attributes(session, attributes)
    return session


class TpmKey:
    """An RSA key loaded in a TPM: ``sign`` is RSASSA-PKCS1-v1_5 SHA-256 done by the TPM.

    One ESAPI context, used under a lock (an ESAPI context is not thread-safe), and one salted
    HMAC session for the key's PIN; ``close`` flushes the session and the transient key, and
    closes the connection. A key never closed is closed at interpreter exit: without a resource
    manager (swtpm's socket, /dev/tpm0) the TPM would keep its objects after the process ends.
    """

    alg = "RS256"

    def __init__(
        self, esys: ESAPI, handle: ESYS_TR, session: ESYS_TR, public: TPM2B_PUBLIC, *, transient: bool
    ) -> None:
        self._esys: ESAPI | None = esys
        self._handle, self._session = handle, session
        self._public_der = spki(public)
        self._lock = threading.Lock()
        self._release = weakref.finalize(self, _release, esys, [session, handle] if transient else [session])

    def _use(self, action: Callable[[ESAPI], _T]) -> _T:
        with self._lock:
            if self._esys is None:
                raise HardwareKeyError("the TPM key is closed")
            return action(self._esys)

    def sign(self, signing_input: bytes) -> bytes:
        digest = hashlib.sha256(signing_input).digest()
        scheme = TPMT_SIG_SCHEME(
            scheme=TPM2_ALG.RSASSA, details=TPMU_SIG_SCHEME(rsassa=TPMS_SCHEME_HASH(hashAlg=TPM2_ALG.SHA256))
        )
        # A null ticket: an unrestricted key signs any digest (Part 3, §20.2).
        ticket = TPMT_TK_HASHCHECK(tag=TPM2_ST.HASHCHECK, hierarchy=TPM2_RH.NULL)

        def sign_in_tpm(esys: ESAPI) -> bytes:
            with _tpm_errors("signing in the TPM"):
                signature = esys.sign(self._handle, digest, scheme, ticket, session1=self._session)
            return bytes(signature.signature.rsassa.sig)

        return self._use(sign_in_tpm)

    def public_key_der(self) -> bytes:
        return self._public_der

    def close(self) -> None:
        with self._lock:
            self._esys = None
            self._release()  # once: a finalizer called again does nothing

    def __enter__(self) -> TpmKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _release(esys: ESAPI, contexts: list[ESYS_TR]) -> None:
    try:
        for context in contexts:
            with contextlib.suppress(TSS2_Exception):  # already gone: nothing left to release
                esys.flush_context(context)
    finally:
        esys.close()


def open_key(ref: TpmReference, auth: str | None, *, tcti: str | None = None) -> TpmKey:
    """Load the key ``ref`` names (a blob under its parent, or a persistent handle), ready to sign."""
    if ref.needs_auth and auth is None:
        raise HardwareKeyError("the TPM key needs its PIN (authorization value)")
    secret = _auth_bytes(auth if ref.needs_auth else None)
    esys = _connect(tcti or tcti_from_env())
    try:
        if ref.handle is None:
            public = unmarshal_public(ref.public)
            check_signing_key(public)
        # The parent salts the session; a persistent key is salted by the owner's storage primary.
        parent, created = _parent(esys, OWNER_HIERARCHY if ref.handle else ref.parent, rsa_parent=ref.rsa_parent)
        try:
            if ref.handle is not None:
                with _tpm_errors(f"opening the TPM key at 0x{ref.handle:08x}"):
                    handle = esys.tr_from_tpmpublic(ref.handle)
                    public, _, _ = esys.read_public(handle)
            else:
                with _tpm_errors("loading the TPM key"):
                    handle = esys.load(parent, unmarshal_private(ref.private), public)
            session = _salted_session(esys, parent)
        finally:
            if created:
                esys.flush_context(parent)
        transient = ref.handle is None
        try:
            check_signing_key(public)
        except HardwareKeyError:
            esys.flush_context(session)
            if transient:
                esys.flush_context(handle)
            raise
        esys.tr_set_auth(handle, secret)
        return TpmKey(esys, handle, session, public, transient=transient)
    except BaseException:
        esys.close()
        raise


def generate_key(auth: str | None, *, tcti: str | None = None, persist: int | None = None) -> TpmReference:
    """Create an RSA-2048 signing key in the TPM: its TSS2 key file, or (``persist``) a reference
    to it made persistent at that handle (0x81000000–0x81ffffff, which must be free)."""
    secret = _auth_bytes(auth)
    if persist is not None:
        handle_reference(persist, empty_auth=True)  # checks the range before the TPM works
    esys = _connect(tcti or tcti_from_env())
    try:
        parent, _ = _parent(esys, OWNER_HIERARCHY, rsa_parent=False)
        try:
            session = _salted_session(esys, parent, encrypt_first_parameter=True)
            try:
                with _tpm_errors("creating a key in the TPM"):
                    sensitive = TPM2B_SENSITIVE_CREATE(sensitive=TPMS_SENSITIVE_CREATE(userAuth=secret))
                    private, public, *_ = esys.create(parent, sensitive, signing_template(), session1=session)
            finally:
                esys.flush_context(session)
            if persist is None:
                return encode_key_file(public.marshal(), private.marshal(), empty_auth=not secret)
            with _tpm_errors(f"making the TPM key persistent at 0x{persist:08x}", _OWNER_AUTH):
                loaded = esys.load(parent, private, public)
                try:
                    esys.evict_control(ESYS_TR.OWNER, loaded, persist)
                finally:
                    esys.flush_context(loaded)
            return handle_reference(persist, empty_auth=not secret)
        finally:
            esys.flush_context(parent)
    finally:
        esys.close()
