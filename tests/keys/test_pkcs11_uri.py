"""RFC 7512 ``pkcs11:`` URIs: the RFC's own examples parse (or are refused where they carry a PIN
or a vendor attribute), percent-encoding decodes exactly, canonical text round-trips, and
anything else is one ``HardwareKeyError`` line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gcptoken.errors import HardwareKeyError
from gcptoken.keys.pkcs11_uri import MAX_URI_LENGTH, PATH_ATTRIBUTES, Pkcs11Uri, parse_uri

# RFC 7512 §3's examples that carry no PIN and no vendor attribute.
RFC_EXAMPLES = [
    "pkcs11:",
    "pkcs11:object=my-pubkey;type=public",
    "pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
    "pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
    "pkcs11:slot-description=Sun%20Metaslot",
    "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23",
    "pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ef%fe%01%02%03%ba%dd%ef%fe",
    "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
    "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert",
]


@pytest.mark.parametrize("text", RFC_EXAMPLES)
def test_the_rfc_examples_parse_and_round_trip(text: str) -> None:
    uri = parse_uri(text)
    assert parse_uri(uri.text) == uri
    assert parse_uri(uri.text).text == uri.text


def test_values_are_percent_decoded_exactly() -> None:
    uri = parse_uri(RFC_EXAMPLES[6])
    assert uri.token == "My token% created by Joe"
    assert uri.id == bytes.fromhex("010203badd effe010203baddeffe".replace(" ", ""))
    assert uri.get("library-version") == "3"
    assert parse_uri(RFC_EXAMPLES[7]).token == "A name with a substring %;"
    assert parse_uri(RFC_EXAMPLES[8]).token == "Name with a small A with acute: á"
    assert parse_uri(RFC_EXAMPLES[3]).module_path == "/mnt/libmypkcs11.so.1"  # "/" is literal in the query
    assert parse_uri("pkcs11:object=a%3Db&c").object == "a=b&c"  # "=" and "&" are literal in the path
    assert parse_uri("pkcs11:serial=").get("serial") == ""


def test_canonical_text_orders_attributes_and_encodes_uppercase() -> None:
    uri = parse_uri("pkcs11:id=%ab;object=k%20ey;token=t?module-path=/m.so")
    assert uri.text == "pkcs11:token=t;object=k%20ey;id=%AB?module-path=/m.so"
    assert uri == parse_uri(uri.text) and hash(uri) == hash(parse_uri(uri.text))
    assert str(uri) == uri.text


def test_with_attributes_sets_and_removes() -> None:
    uri = parse_uri("pkcs11:token=t;object=o").with_attributes(type="private", object=None).with_id(b"\x00;")
    assert uri.text == "pkcs11:token=t;type=private;id=%00%3B"
    with pytest.raises(ValueError, match="not a PKCS#11 URI attribute"):
        uri.with_attributes(vendor="x")


@pytest.mark.parametrize(
    "text",
    [
        "pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
        "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
        "pkcs11:pin-value=the-pin",
    ],
)
def test_a_pin_in_the_uri_is_refused_with_where_it_comes_from(text: str) -> None:
    with pytest.raises(HardwareKeyError) as caught:
        parse_uri(text)
    message = str(caught.value)
    assert "\n" not in message and "the-pin" not in message and "/etc/token" not in message
    assert "may not carry the PIN" in message and "$GCPTOKEN_KEY_PIN" in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("https://example.com/", "must start with 'pkcs11:'"),
        ("pkcs11", "must start with 'pkcs11:'"),
        ("pkcs11:token=a;token=b", "token appears twice"),
        ("pkcs11:id=%01;id=%02", "id appears twice"),
        ("pkcs11:?module-path=/a&module-path=/b", "module-path appears twice"),
        ("pkcs11:token=my-token;vendor-aaa=value-a", "unknown path attribute 'vendor-aaa'"),
        ("pkcs11:?vendor-bbb=value-b", "unknown query attribute 'vendor-bbb'"),
        ("pkcs11:module-path=/x.so", "it belongs in the query"),
        ("pkcs11:?token=t", "it belongs in the path"),
        ("pkcs11:Token=t", "unknown path attribute 'Token'"),  # names are case-sensitive (§2.3)
        ("pkcs11:type=key", "type must be one of"),
        ("pkcs11:slot-id=0x1", "slot-id must be a decimal number"),
        ("pkcs11:library-version=1.2.3", "library-version must be MAJOR or MAJOR.MINOR"),
        ("pkcs11:token", "has no '='"),
        ("pkcs11:token=a b", "must be percent-encoded"),
        ("pkcs11:token=a/b", "must be percent-encoded"),  # "/" only in the query
        ("pkcs11:?module-path=/a;b", "must be percent-encoded"),  # ";" never raw
        ("pkcs11:token=%zz", "must be percent-encoded"),
        ("pkcs11:token=%4", "must be percent-encoded"),
        ("pkcs11:token=%FF", "not UTF-8"),
        ("pkcs11:token=a%00", "NUL"),
        ("pkcs11:token=a#frag", "fragment"),
        ("pkcs11:token=a?", "empty query"),
        ("pkcs11:" + "token=" + "a" * MAX_URI_LENGTH, "longer than"),
    ],
)
def test_what_the_rfc_does_not_allow_is_one_line(text: str, says: str) -> None:
    with pytest.raises(HardwareKeyError) as caught:
        parse_uri(text)
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith(("invalid PKCS#11 URI: ", "a PKCS#11 URI may not"))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200) | st.text(alphabet="pkcs11:;?&=%0aAF/ -tokenidobject", max_size=80))
def test_any_text_parses_or_is_refused_with_hardware_key_error(text: str) -> None:
    for candidate in (text, "pkcs11:" + text):
        uri = _parsed_or_error(candidate)
        if isinstance(uri, str):
            assert "\n" not in uri
        else:
            assert parse_uri(uri.text) == uri


def _parsed_or_error(text: str) -> Pkcs11Uri | str:
    try:
        return parse_uri(text)
    except HardwareKeyError as exc:  # nothing else may escape
        return str(exc)


TEXT_ATTRIBUTES = [name for name in PATH_ATTRIBUTES if name not in ("id", "type", "slot-id", "library-version")]


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from([*TEXT_ATTRIBUTES, "module-name", "module-path"]), st.text(max_size=30)),
    st.none() | st.binary(max_size=20),
)
def test_any_attributes_round_trip_through_canonical_text(values: dict[str, str], key_id: bytes | None) -> None:
    values = {name: value for name, value in values.items() if "\x00" not in value}
    uri = Pkcs11Uri().with_attributes(**{name.replace("-", "_"): value for name, value in values.items()})
    uri = uri.with_id(key_id)
    again = parse_uri(uri.text)
    assert again == uri and again.attributes == values and again.id == key_id
