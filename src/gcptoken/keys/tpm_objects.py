"""The TPM objects gcptoken makes and accepts: the storage primary's template (tpm2-openssl's),
the signing key's, the check that a key can sign RS256, its public key as SubjectPublicKeyInfo,
and a key file's parts unmarshalled. Imported by gcptoken.keys.tpm, after its extra is checked."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import TPM2_ALG, TPM2_ECC, TPMA_OBJECT
from tpm2_pytss.types import (
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPMS_ECC_PARMS,
    TPMS_RSA_PARMS,
    TPMT_ECC_SCHEME,
    TPMT_KDF_SCHEME,
    TPMT_PUBLIC,
    TPMT_RSA_SCHEME,
    TPMT_SYM_DEF_OBJECT,
    TPMU_PUBLIC_PARMS,
    TPMU_SYM_KEY_BITS,
    TPMU_SYM_MODE,
)

from gcptoken.errors import HardwareKeyError

__all__ = [
    "check_signing_key",
    "signing_template",
    "spki",
    "storage_template",
    "unmarshal_private",
    "unmarshal_public",
]

# The storage primary under TPM_RH_OWNER that tpm2-openssl (src/tpm2-provider-pkey.c,
# primaryEccTemplate/primaryRsaTemplate, and tpm2_build_primary: ECC when the TPM has it) and
# tpm2-pytss's tsskey.py recreate for a key file whose parent is 0x40000001: same template, same
# primary seed, same key; so a blob made by one loads in the other.
_STORAGE = TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.DECRYPT | TPMA_OBJECT.NODA
_STORAGE |= TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
_AES128_CFB = TPMT_SYM_DEF_OBJECT(
    algorithm=TPM2_ALG.AES, keyBits=TPMU_SYM_KEY_BITS(aes=128), mode=TPMU_SYM_MODE(aes=TPM2_ALG.CFB)
)

# A signing key as the issue asks: made in this TPM, never duplicable, never a decryption key.
_SIGNING = TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
_SIGNING |= TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.SIGN_ENCRYPT


def storage_template(ecc: bool) -> TPM2B_PUBLIC:
    """The owner's storage primary: ECC P-256 where the TPM has ECC, else RSA-2048 (tpm2-openssl's rule)."""
    if ecc:
        parameters = TPMU_PUBLIC_PARMS(
            eccDetail=TPMS_ECC_PARMS(
                symmetric=_AES128_CFB,
                scheme=TPMT_ECC_SCHEME(scheme=TPM2_ALG.NULL),
                curveID=TPM2_ECC.NIST_P256,
                kdf=TPMT_KDF_SCHEME(scheme=TPM2_ALG.NULL),
            )
        )
    else:
        parameters = TPMU_PUBLIC_PARMS(
            rsaDetail=TPMS_RSA_PARMS(
                symmetric=_AES128_CFB, scheme=TPMT_RSA_SCHEME(scheme=TPM2_ALG.NULL), keyBits=2048, exponent=0
            )
        )
    area = TPMT_PUBLIC(
        type=TPM2_ALG.ECC if ecc else TPM2_ALG.RSA,
        nameAlg=TPM2_ALG.SHA256,
        objectAttributes=_STORAGE,
        authPolicy=b"",
        parameters=parameters,
    )
    return TPM2B_PUBLIC(publicArea=area)


def signing_template() -> TPM2B_PUBLIC:
    """An RSA-2048 signing key, e = 65537."""
    area = TPMT_PUBLIC(
        type=TPM2_ALG.RSA,
        nameAlg=TPM2_ALG.SHA256,
        objectAttributes=_SIGNING,
        authPolicy=b"",
        parameters=TPMU_PUBLIC_PARMS(
            rsaDetail=TPMS_RSA_PARMS(
                symmetric=TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL),
                scheme=TPMT_RSA_SCHEME(scheme=TPM2_ALG.NULL),  # as tpm2-openssl's keys: the signer picks
                keyBits=2048,
                exponent=0,
            )
        ),
    )
    return TPM2B_PUBLIC(publicArea=area)


def check_signing_key(public: TPM2B_PUBLIC) -> None:
    area = public.publicArea
    attributes = int(area.objectAttributes)
    scheme = area.parameters.rsaDetail.scheme if area.type == TPM2_ALG.RSA else None
    if (
        scheme is None
        or not attributes & TPMA_OBJECT.SIGN_ENCRYPT
        or attributes & TPMA_OBJECT.RESTRICTED
        or scheme.scheme not in (TPM2_ALG.NULL, TPM2_ALG.RSASSA)
        or (scheme.scheme == TPM2_ALG.RSASSA and scheme.details.rsassa.hashAlg != TPM2_ALG.SHA256)
    ):
        raise HardwareKeyError("the TPM key is not an unrestricted RSA signing key able to sign RS256")


def spki(public: TPM2B_PUBLIC) -> bytes:
    area = public.publicArea
    modulus = int.from_bytes(bytes(area.unique.rsa), "big")
    exponent = int(area.parameters.rsaDetail.exponent) or 65537  # 0 means the default, Part 2 §12.2.3.5
    key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def unmarshal_public(data: bytes) -> TPM2B_PUBLIC:
    try:
        public, used = TPM2B_PUBLIC.unmarshal(data)
    except TSS2_Exception:
        used = -1
    if used != len(data):
        raise HardwareKeyError("the TSS2 key's public part is not a TPM2B_PUBLIC")
    return public


def unmarshal_private(data: bytes) -> TPM2B_PRIVATE:
    try:
        private, used = TPM2B_PRIVATE.unmarshal(data)
    except TSS2_Exception:
        used = -1
    if used != len(data):
        raise HardwareKeyError("the TSS2 key's private part is not a TPM2B_PRIVATE")
    return private
