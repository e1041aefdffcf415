"""A service-account key inside a PKCS#11 token: ``open_key`` finds it and signs with it there
(CKM_SHA256_RSA_PKCS), ``generate_key`` makes a new one in the token that can never leave it.

Needs python-pkcs11 (``pip install 'gcptoken[pkcs11]'``), imported here only, when a key is
opened or made. A module is loaded (C_Initialize) once per process per file; errors are one line
and never carry the PIN.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Final, NoReturn

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gcptoken.errors import HardwareKeyError
from gcptoken.extras import require
from gcptoken.keys.pkcs11_logins import LoginLedger
from gcptoken.keys.pkcs11_module import ModuleFile, choose_module, open_module
from gcptoken.keys.pkcs11_uri import Pkcs11Uri

if TYPE_CHECKING:
    import pkcs11
    from pkcs11._pkcs11 import lib as Library

__all__ = ["KEY_SIZES", "PIN_ENV", "Pkcs11Key", "generate_key", "load_module", "open_key"]

PIN_ENV: Final = "GCPTOKEN_KEY_PIN"
KEY_SIZES: Final = (2048, 3072, 4096)  # Google's key upload takes RSA 2048; larger for other uses
MAX_MATCHES: Final = 16  # enough to say "several match" and list their ids

_modules: dict[tuple[int, int], Library] = {}  # by (st_dev, st_ino); each holds its file open
_module_files: list[ModuleFile] = []
_modules_lock = threading.Lock()
_logins = LoginLedger()
_binding: list[Any] = []  # python-pkcs11, once imported


def _pkcs11() -> Any:
    """python-pkcs11 (typed Any: its exception classes are looked up by name here)."""
    if not _binding:
        require("pkcs11", "gcptoken's PKCS#11 keys (gcptoken.keys.pkcs11)")
        import pkcs11

        _binding.append(pkcs11)
    return _binding[0]


def load_module(path: str) -> Library:
    """The module at ``path``, C_Initialize'd once per process per file (by its st_dev and
    st_ino, whatever path names it). What is loaded is the file ``open_module`` checked, through
    its open fd: renaming things on the path after the check cannot swap in another library.
    The fd stays open as long as the module is loaded (for the life of the process)."""
    p11 = _pkcs11()
    opened = open_module(path)
    with _modules_lock:
        if (module := _modules.get(opened.identity)) is not None:
            opened.close()
            return module
        try:
            loaded: Library = p11.lib(opened.load_path)  # dlopen follows /proc/self/fd/N to the checked inode
        except Exception as exc:  # dlopen and C_Initialize failures alike
            opened.close()
            raise HardwareKeyError(f"could not load PKCS#11 module {path}: {type(exc).__name__}") from None
        _modules[opened.identity] = loaded
        _module_files.append(opened)  # never closed: dlopen'd code stays mapped for the process's life
        return loaded


def _text(value: object) -> str:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return text.rstrip(" \x00")  # PKCS#11 pads these fixed-size fields with blanks


def _library_matches(module: Library, uri: Pkcs11Uri) -> bool:
    wanted = uri.get("library-version")
    # "library-version=M" means M.0, as p11-kit reads it (p11-kit/uri.c, parse_struct_version).
    version = None if wanted is None else tuple(int(part) for part in (wanted + ".0").split(".")[:2])
    return (
        uri.get("library-manufacturer") in (None, _text(module.manufacturer_id))
        and uri.get("library-description") in (None, _text(module.library_description))
        and version in (None, tuple(module.library_version))
    )


def _find_token(module: Library, uri: Pkcs11Uri, module_path: str) -> pkcs11.Token:
    """The one token ``uri``'s token, slot and library attributes name (RFC 7512 §2.4: an
    attribute not given matches anything)."""
    p11 = _pkcs11()
    found: list[pkcs11.Token] = []
    labels: list[str] = []
    if _library_matches(module, uri):
        for slot in module.get_slots(token_present=True):
            try:
                token = slot.get_token()
            except (p11.TokenNotPresent, p11.TokenNotRecognised):
                continue
            if not token.flags & p11.TokenFlag.TOKEN_INITIALIZED:  # SoftHSM2's spare empty slot
                continue
            labels.append(_text(token.label))
            wanted = {
                "slot-id": str(slot.slot_id),
                "slot-description": _text(slot.slot_description),
                "slot-manufacturer": _text(slot.manufacturer_id),
                "token": _text(token.label),
                "manufacturer": _text(token.manufacturer_id),
                "serial": _text(token.serial),
                "model": _text(token.model),
            }
            if all(uri.get(name) in (None, value) for name, value in wanted.items()):
                found.append(token)
    if len(found) == 1:
        return found[0]
    if not found:
        there = ", ".join(repr(label) for label in labels) or "none"
        raise HardwareKeyError(
            f"no PKCS#11 token matches {_token_words(uri)} in module {module_path} (tokens: {there})"
        )
    serials = ", ".join(repr(_text(token.serial)) for token in found)
    raise HardwareKeyError(
        f"{len(found)} PKCS#11 tokens match {_token_words(uri)} in module {module_path}: "
        f"name one by adding serial= (theirs: {serials})"
    )


def _token_words(uri: Pkcs11Uri) -> str:
    names = ("token", "serial", "manufacturer", "model", "slot-id", "slot-description", "library-description")
    given = [f"{name}={uri.get(name)!r}" for name in names if uri.get(name) is not None]
    return " ".join(given) or "the URI"


def _login_error(exc: Exception, label: str) -> HardwareKeyError:
    """One line for a failed C_Login (PKCS#11 v2.40 §5.6, C_Login's return values)."""
    p11 = _pkcs11()
    if isinstance(exc, p11.PinIncorrect):
        return HardwareKeyError(f"wrong PIN for PKCS#11 token {label!r}")
    if isinstance(exc, p11.PinLocked):
        return HardwareKeyError(f"the user PIN of PKCS#11 token {label!r} is locked: unlock it with the SO PIN")
    if isinstance(exc, p11.PinExpired):
        return HardwareKeyError(f"the user PIN of PKCS#11 token {label!r} has expired: set a new one")
    if isinstance(exc, p11.PinLenRange | p11.PinInvalid):
        return HardwareKeyError(f"PKCS#11 token {label!r} refused the PIN's length or characters")
    if isinstance(exc, p11.UserPinNotInitialized):
        return HardwareKeyError(f"PKCS#11 token {label!r} has no user PIN yet: initialise it first")
    return HardwareKeyError(f"could not log in to PKCS#11 token {label!r}: {type(exc).__name__}")


def _open_session(module: Library, token: pkcs11.Token, pin: str | None, *, rw: bool) -> tuple[Any, Hashable]:
    """A session on ``token`` (logged in, with ``pin``) and the ledger key to release it with
    (``_closed``). The login is the token's anchor session's (``LoginLedger``): this session never
    logs in or out itself, and a PIN unlike the one that logged in is wrong."""
    p11 = _pkcs11()
    label = _text(token.label)
    token_key = (module.so, token.slot.slot_id)  # /proc/self/fd/N, held open: one login state per loaded module
    with _logins.lock:
        if pin is not None and _logins.logged_in(token_key):
            if not _logins.same_pin(token_key, pin):
                raise HardwareKeyError(f"wrong PIN for PKCS#11 token {label!r}")
        elif pin is not None:
            try:
                anchor = token.open(user_pin=pin)
            except p11.UserAlreadyLoggedIn:  # by other code in this process: its login is shared
                anchor = None
            except p11.PKCS11Error as exc:
                raise _login_error(exc, label) from None
            _logins.logged_in_by(token_key, pin, anchor)
        _logins.opened(token_key)
        try:
            session = token.open(rw=rw)
        except p11.PKCS11Error as exc:
            _closed(None, token_key)
            raise HardwareKeyError(
                f"could not open a session with PKCS#11 token {label!r}: {type(exc).__name__}"
            ) from None
    return session, token_key


def _closed(session: Any, token_key: Hashable) -> None:
    """Close ``session``; if it was the token's last, close the anchor too, which logs out."""
    anchor = None
    try:
        if session is not None:
            with contextlib.suppress(Exception):  # the token may be gone already: nothing left to release
                session.close()
    finally:
        anchor = _logins.closed(token_key)
    if anchor is not None:
        with contextlib.suppress(Exception):
            anchor.close()


def _find_private_key(session: pkcs11.Session, uri: Pkcs11Uri, logged_in: bool, label: str) -> Any:
    """The one private key object ``uri`` names (Any: python-pkcs11 types it as its base Object)."""
    p11 = _pkcs11()
    if uri.type not in (None, "private"):
        raise HardwareKeyError(f"the PKCS#11 URI names a {uri.type} object: a signing key is type=private")
    template: dict[Any, Any] = {p11.Attribute.CLASS: p11.ObjectClass.PRIVATE_KEY}
    if uri.object is not None:
        template[p11.Attribute.LABEL] = uri.object
    if uri.id is not None:
        template[p11.Attribute.ID] = uri.id
    found = []
    for candidate in session.get_objects(template):
        found.append(candidate)
        if len(found) == MAX_MATCHES:
            break
    which = _key_words(uri)
    if not found:
        hint = "" if logged_in else f" (no PIN given: a token shows private keys only after login; set ${PIN_ENV})"
        raise HardwareKeyError(f"no private key matches {which} in PKCS#11 token {label!r}{hint}")
    if len(found) > 1:
        ids = ", ".join(_id_text(key) for key in found)
        raise HardwareKeyError(
            f"{len(found)}{'+' if len(found) == MAX_MATCHES else ''} private keys match {which} in PKCS#11 token "
            f"{label!r}: name one with id= (theirs: {ids})"
        )
    key = found[0]
    if key[p11.Attribute.KEY_TYPE] != p11.KeyType.RSA:
        raise HardwareKeyError(
            f"the private key {which} in PKCS#11 token {label!r} is not RSA (service-account keys are RSA)"
        )
    if not key[p11.Attribute.SIGN]:
        raise HardwareKeyError(f"the private key {which} in PKCS#11 token {label!r} cannot sign (CKA_SIGN is false)")
    return key


def _key_words(uri: Pkcs11Uri) -> str:
    given = [f"object={uri.object!r}"] if uri.object is not None else []
    if uri.id is not None:
        given.append("id=" + "".join(f"%{byte:02X}" for byte in uri.id))
    return " ".join(given) or "(any)"


def _id_text(key: Any) -> str:
    try:
        key_id = bytes(key[_pkcs11().Attribute.ID])
    except Exception:  # CKA_ID is optional: a key may have none to show
        return "no id"
    return "id=" + "".join(f"%{byte:02X}" for byte in key_id) if key_id else "an empty id"


def _public_der(session: pkcs11.Session, key: Any) -> bytes:
    """SubjectPublicKeyInfo from the private key's CKA_MODULUS and CKA_PUBLIC_EXPONENT (public
    attributes of an RSA private key, PKCS#11 v2.40 §2.1.3), else from its public key object."""
    p11 = _pkcs11()
    source: Any = key
    try:
        modulus, exponent = key[p11.Attribute.MODULUS], key[p11.Attribute.PUBLIC_EXPONENT]
    except p11.PKCS11Error:
        template = {p11.Attribute.CLASS: p11.ObjectClass.PUBLIC_KEY, p11.Attribute.ID: key[p11.Attribute.ID]}
        source = next(iter(session.get_objects(template)), None)
        if source is None:
            raise HardwareKeyError("the PKCS#11 key shows no public half (no modulus, no public key object)") from None
        modulus, exponent = source[p11.Attribute.MODULUS], source[p11.Attribute.PUBLIC_EXPONENT]
    numbers = rsa.RSAPublicNumbers(int.from_bytes(exponent, "big"), int.from_bytes(modulus, "big"))
    return numbers.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class Pkcs11Key:
    """An RSA private key in a PKCS#11 token, signing there. One session, used under a lock:
    a PKCS#11 session runs one operation at a time (v2.40 §5.1)."""

    alg = "RS256"

    def __init__(self, session: Any, token_key: Hashable, key: Any, public_der: bytes, label: str) -> None:
        self._session: Any = session
        self._token_key = token_key
        self._key = key
        self._public_der = public_der
        self._label = label
        self._lock = threading.Lock()

    def sign(self, signing_input: bytes) -> bytes:
        p11 = _pkcs11()
        with self._lock:
            if self._session is None:
                raise HardwareKeyError(f"the PKCS#11 key in token {self._label!r} was closed")
            try:
                return bytes(self._key.sign(signing_input, mechanism=p11.Mechanism.SHA256_RSA_PKCS))
            except p11.PKCS11Error as exc:
                self._signing_failed(exc)

    def _signing_failed(self, exc: Exception) -> NoReturn:
        p11 = _pkcs11()
        if isinstance(exc, p11.DeviceRemoved | p11.TokenNotPresent | p11.SessionHandleInvalid | p11.SessionClosed):
            raise HardwareKeyError(f"PKCS#11 token {self._label!r} is gone (removed, or its session closed)") from None
        raise HardwareKeyError(f"PKCS#11 token {self._label!r} could not sign: {type(exc).__name__}") from None

    def public_key_der(self) -> bytes:
        return self._public_der

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            _closed(session, self._token_key)

    def __repr__(self) -> str:
        return f"<Pkcs11Key token={self._label!r} {'closed' if self._session is None else 'open'}>"


def open_key(uri: Pkcs11Uri, pin: str | None) -> Pkcs11Key:
    """The one RSA private key ``uri`` names, logged in with the user ``pin`` (None: no login)."""
    _pkcs11()  # a missing extra is said before anything about the module
    module_path = choose_module(uri)
    module = load_module(module_path)
    token = _find_token(module, uri, module_path)
    label = _text(token.label)
    session, token_key = _open_session(module, token, pin, rw=False)
    try:
        key = _find_private_key(session, uri, pin is not None, label)
        public_der = _public_der(session, key)
    except BaseException:
        _closed(session, token_key)
        raise
    return Pkcs11Key(session, token_key, key, public_der, label)


def generate_key(uri: Pkcs11Uri, pin: str, *, bits: int = 2048) -> Pkcs11Uri:
    """A new RSA key pair made in the token ``uri`` names, labelled ``uri``'s object: private,
    sensitive, never extractable, for signing only. Returns the URI naming the new private key."""
    label = uri.object
    if not label:
        raise HardwareKeyError("generating a PKCS#11 key needs a label: add object=LABEL to the URI")
    if uri.id is not None or uri.type not in (None, "private"):
        raise HardwareKeyError("generating a PKCS#11 key: leave id= and type= out of the URI (gcptoken sets them)")
    if bits not in KEY_SIZES:
        raise HardwareKeyError(f"RSA key size must be one of {', '.join(map(str, KEY_SIZES))}, not {bits}")
    p11 = _pkcs11()
    module_path = choose_module(uri)
    module = load_module(module_path)
    token = _find_token(module, uri, module_path)
    token_label = _text(token.label)
    key_id = os.urandom(16)  # random: a CKA_ID from the public key would link tokens holding copies
    attribute = p11.Attribute
    session, token_key = _open_session(module, token, pin, rw=True)
    try:
        if next(iter(session.get_objects({attribute.LABEL: label})), None) is not None:
            raise HardwareKeyError(f"PKCS#11 token {token_label!r} already holds an object labelled {label!r}")
        try:
            session.generate_keypair(
                p11.KeyType.RSA,
                bits,
                id=key_id,
                label=label,
                store=True,
                capabilities=p11.MechanismFlag.SIGN | p11.MechanismFlag.VERIFY,
                public_template={attribute.TOKEN: True, attribute.PRIVATE: False, attribute.VERIFY: True},
                private_template={
                    attribute.TOKEN: True,
                    attribute.PRIVATE: True,
                    attribute.SENSITIVE: True,
                    attribute.EXTRACTABLE: False,
                    attribute.SIGN: True,
                    attribute.DECRYPT: False,
                    attribute.UNWRAP: False,
                },
            )
        except p11.PKCS11Error as exc:
            raise HardwareKeyError(
                f"PKCS#11 token {token_label!r} could not generate an RSA {bits} key: {type(exc).__name__}"
            ) from None
    finally:
        _closed(session, token_key)
    # The serial too (CK_TOKEN_INFO serialNumber, RFC 7512 "serial"): a second token with the same
    # label (another card, a re-initialised token) must not make this URI ambiguous.
    serial = _text(token.serial) or None
    named = Pkcs11Uri().with_attributes(
        token=token_label, serial=serial, object=label, type="private", module_path=module_path
    )
    return named.with_id(key_id)
