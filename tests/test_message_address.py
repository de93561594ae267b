"""Addresses and mailboxes: parsing, IDNA, SMTPUTF8, RFC 5321 limits, refused input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpx.errors import InvalidInputError
from smtpx.message import Address, Mailbox
from smtpx.message.address import _check


@pytest.mark.parametrize(
    ("text", "local", "written"),
    [
        ("user@example.com", "user", "user@example.com"),
        ("first.last+tag@example.co.uk", "first.last+tag", "first.last+tag@example.co.uk"),
        (
            "!#$%&'*+-/=?^_`{|}~@example.com",
            "!#$%&'*+-/=?^_`{|}~",
            "!#$%&'*+-/=?^_`{|}~@example.com",
        ),
        ('"john doe"@example.com', '"john doe"', '"john doe"@example.com'),
        ('"a\\"b@c"@example.com', '"a\\"b@c"', '"a\\"b@c"@example.com'),
        ("user@[192.0.2.1]", "user", "user@[192.0.2.1]"),
        ("user@[IPv6:2001:db8::1]", "user", "user@[IPv6:2001:db8::1]"),
        ("postmaster@localhost", "postmaster", "postmaster@localhost"),
        ("User@Example.COM", "User", "User@Example.COM"),
        # IDNA: an ASCII local part keeps the address ASCII
        ("user@bücher.de", "user", "user@xn--bcher-kva.de"),
        ("user@BÜCHER.de", "user", "user@xn--bcher-kva.de"),
        ("user@xn--bcher-kva.de", "user", "user@xn--bcher-kva.de"),
        ("user@例え.テスト", "user", "user@xn--r8jz45g.xn--zckzah"),
        # a UTF-8 local part needs SMTPUTF8 anyway: the domain keeps its U-labels
        ("jörg@bücher.de", "jörg", "jörg@bücher.de"),
        ("用户@例子.广告", "用户", "用户@例子.广告"),
    ],
)
def test_addresses_that_are_accepted(text: str, local: str, written: str) -> None:
    address = Address(text)
    assert address.local == local
    assert str(address) == written
    assert address.needs_smtputf8 == (not local.isascii())
    assert repr(address) == f"Address({written!r})"


def test_the_domain_forms() -> None:
    address = Address("jörg@Bücher.de")
    assert address.domain == "Bücher.de"
    assert address.ascii_domain == "xn--bcher-kva.de"


def test_addresses_differ_only_by_the_case_of_their_local_part() -> None:
    assert Address("user@EXAMPLE.com") == Address("user@example.com")
    assert hash(Address("user@EXAMPLE.com")) == hash(Address("user@example.com"))
    assert Address("User@example.com") != Address("user@example.com")
    assert Address("user@bücher.de") == Address("user@xn--bcher-kva.de")
    assert Address("a@b.c") != "a@b.c"


LONG_LABEL = "a" * 64
QUOTE = "which is not allowed in a local part unless it is quoted"
LITERAL = "address domain is not a valid address literal (like [192.0.2.1] or [IPv6:2001:db8::1])"
IDNA = "which IDNA 2003 and 2008 encode differently: give the domain as A-labels (xn--...)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "address is empty"),
        ("user", "address has no '@' (expected local@domain)"),
        ("@example.com", "address local part is empty"),
        ('""@example.com', "address local part is empty"),
        ("user@", "address domain is empty"),
        (
            "us er@example.com",
            f"address contains ' ' at index 2, {QUOTE}",
        ),
        (
            "a,b@example.com",
            f"address contains ',' at index 1, {QUOTE}",
        ),
        (
            'a"b@example.com',
            f"address contains '\"' at index 1, {QUOTE}",
        ),
        (".user@example.com", "address local part has a misplaced '.' at index 0"),
        ("user.@example.com", "address local part has a misplaced '.' at index 4"),
        ("us..er@example.com", "address local part has a misplaced '.' at index 3"),
        ('"user@example.com', "address local part has no closing quote"),
        ('"us"er@example.com', "address local part has text after its closing quote at index 3"),
        ('"user\\"@example.com', "address local part has no closing quote"),
        ("user<@example.com", "address contains '<' at index 4"),
        ("<user@example.com>", "address contains '<' at index 0"),
        (
            "user@exa mple.com",
            "address domain contains ' ' at index 8, which is not allowed in a domain",
        ),
        (
            "user@exam_ple.com",
            "address domain contains '_' at index 9, which is not allowed in a domain",
        ),
        ("user@example..com", "address domain has an empty label at index 13"),
        ("user@.example.com", "address domain has an empty label at index 5"),
        ("user@example.com.", "address domain ends with '.'"),
        ("user@-example.com", "address domain has a label that starts or ends with '-' at index 5"),
        ("user@example-.com", "address domain has a label that starts or ends with '-' at index 5"),
        (
            f"user@{LONG_LABEL}.com",
            "address domain has a label longer than 63 characters at index 5",
        ),
        (
            "user@10.1.2",
            "address domain ends with an all-digit label (neither a name nor an address)",
        ),
        (
            "user@[192.0.2]",
            LITERAL,
        ),
        (
            "user@[::1]",
            LITERAL,
        ),
        (
            "user@[IPv6:fe80::1%eth0]",
            LITERAL,
        ),
        (
            "user@straße.de",
            f"address domain contains 'ß' at index 9, {IDNA}",
        ),
        (
            "user@a\u200db.de",
            f"address domain contains ZWJ at index 6, {IDNA}",
        ),
        (f"user@{'é' * 70}.de", "address domain is not a valid international domain name"),
        ("user@bü cher.de", "address domain contains ' ', which is not allowed in a domain"),
        ("user\r\n@example.com", "address contains a control character (CR) at index 4"),
        ("user@example.com\n", "address contains a control character (LF) at index 16"),
        ("us\ter@example.com", "address contains a control character (HT) at index 2"),
        ("user@exa\x00mple.com", "address contains a control character (NUL) at index 8"),
        ("user@example.com\u2028", "address contains a control character (U+2028) at index 16"),
        ("us\ud800er@example.com", "address contains a surrogate (U+D800) at index 2"),
        # RFC 5321 limits
        ("a" * 65 + "@example.com", "address local part is longer than 64 octets (65)"),
        ("é" * 33 + "@example.com", "address local part is longer than 64 octets (66)"),
        (
            f"{'u' * 10}@{'a' * 60}.{'b' * 60}.{'c' * 60}.{'d' * 60}.co",
            "address is longer than 254 octets (257)",
        ),
        (f"user@{'.'.join(['abc'] * 64)}", "address domain is longer than 253 characters (255)"),
    ],
)
def test_addresses_that_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Address(text)
    assert str(info.value) == message


@pytest.mark.parametrize("value", [b"user@example.com", 42, None])
def test_an_address_is_text(value: object) -> None:
    with pytest.raises(TypeError, match="address must be a str"):
        Address(value)  # type: ignore[arg-type]


# ---------------------------------------------------------------- mailboxes
@pytest.mark.parametrize(
    ("text", "name", "address"),
    [
        ("user@example.com", None, "user@example.com"),
        ("  user@example.com  ", None, "user@example.com"),
        ("<user@example.com>", None, "user@example.com"),
        ("< user@example.com >", None, "user@example.com"),
        ("NoBody <nobody@domain.tld>", "NoBody", "nobody@domain.tld"),
        ("John   Q.  Public <jqp@example.com>", "John Q. Public", "jqp@example.com"),
        ('"Doe, John" <jd@example.com>', "Doe, John", "jd@example.com"),
        ('"Say \\"hi\\"" <hi@example.com>', 'Say "hi"', "hi@example.com"),
        ('John "Johnny" Doe <jd@example.com>', "John Johnny Doe", "jd@example.com"),
        ('"" <e@example.com>', None, "e@example.com"),
        ("Jörg Müller <jm@bücher.de>", "Jörg Müller", "jm@xn--bcher-kva.de"),
        ("=?utf-8?q?J=C3=B6rg?= <j@example.com>", "Jörg", "j@example.com"),
        ("=?UTF-8?B?SsO2cmc=?= <j@example.com>", "Jörg", "j@example.com"),
        ("=?utf-8?q?J=C3=B6rg?= =?utf-8?q?_M?= <j@example.com>", "Jörg M", "j@example.com"),
        ("=?iso-8859-1?q?J=F6rg?= Doe <j@example.com>", "Jörg Doe", "j@example.com"),
        ("=?utf-8*en?q?Hello?= <j@example.com>", "Hello", "j@example.com"),
        ("<weird@example.com> <x@example.com>", "<weird@example.com>", "x@example.com"),
    ],
)
def test_mailboxes_that_parse(text: str, name: str | None, address: str) -> None:
    mailbox = Mailbox.parse(text)
    assert mailbox.name == name
    assert str(mailbox.address) == address


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Name <user@example.com", "mailbox address contains '<' at index 5"),
        ("Name user@example.com>", "mailbox has '>' without '<'"),
        ('"Name <user@example.com>', "mailbox name has an unbalanced '\"' at index 0"),
        ("Name <>", "mailbox address is empty"),
        ("Name <user>", "mailbox address has no '@' (expected local@domain)"),
        (
            "Na\r\nBcc: x@evil.example <user@example.com>",
            "mailbox contains a control character (CR) at index 2",
        ),
        (
            "=?utf-8?q?a=0D=0Ab?= <user@example.com>",
            "mailbox name contains a control character (CR) at index 1",
        ),
        (
            "=?utf-8?b?!!!?= <user@example.com>",
            "mailbox name has an encoded word that cannot be decoded",
        ),
        (
            "=?no-such-charset?q?x?= <user@example.com>",
            "mailbox name has an encoded word that cannot be decoded",
        ),
        (
            "=?utf-8?q?=FF?= <user@example.com>",
            "mailbox name has an encoded word that cannot be decoded",
        ),
    ],
)
def test_mailboxes_that_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Mailbox.parse(text)
    assert str(info.value) == message


def test_mailbox_from_parts() -> None:
    mailbox = Mailbox("user@example.com", "User")
    assert mailbox.address == Address("user@example.com")
    assert mailbox.name == "User"
    assert Mailbox(Address("user@example.com")).name is None
    assert Mailbox("user@example.com", "") == Mailbox("user@example.com")
    with pytest.raises(InvalidInputError) as info:
        Mailbox("user@example.com", "a\nb")
    assert str(info.value) == "mailbox name contains a control character (LF) at index 1"


@pytest.mark.parametrize(
    ("mailbox", "words", "text"),
    [
        (Mailbox("a@example.com"), ["a@example.com"], "a@example.com"),
        (
            Mailbox("a@example.com", "Ann Lee"),
            ["Ann", "Lee", "<a@example.com>"],
            "Ann Lee <a@example.com>",
        ),
        (
            Mailbox("a@example.com", "Lee, Ann"),
            ['"Lee, Ann"', "<a@example.com>"],
            '"Lee, Ann" <a@example.com>',
        ),
        (Mailbox("a@example.com", "a  b"), ['"a  b"', "<a@example.com>"], '"a  b" <a@example.com>'),
        (
            Mailbox("a@example.com", "=?x?="),
            ["=?utf-8?b?PT94Pz0=?=", "<a@example.com>"],
            '"=?x?=" <a@example.com>',
        ),
        (
            Mailbox("a@example.com", "a=?b"),
            ["=?utf-8?q?a=3D=3Fb?=", "<a@example.com>"],
            '"a=?b" <a@example.com>',
        ),
        (
            Mailbox("a@example.com", "Jörg"),
            ["=?utf-8?b?SsO2cmc=?=", "<a@example.com>"],
            '"Jörg" <a@example.com>',
        ),
        (Mailbox("a@bücher.de", "x"), ["x", "<a@xn--bcher-kva.de>"], "x <a@xn--bcher-kva.de>"),
        (Mailbox("ü@bücher.de"), ["ü@bücher.de"], "ü@bücher.de"),
    ],
)
def test_mailbox_header_words_and_text(mailbox: Mailbox, words: list[str], text: str) -> None:
    assert mailbox.header_words() == tuple(words)
    assert str(mailbox) == text


def test_mailbox_equality_and_flags() -> None:
    assert Mailbox.parse("A <a@x.org>") == Mailbox("a@X.ORG", "A")
    assert Mailbox.parse("A <a@x.org>") != Mailbox("a@x.org", "B")
    assert len({Mailbox.parse("A <a@x.org>"), Mailbox("a@x.org", "A")}) == 1
    assert Mailbox.parse("ü@x.org").needs_smtputf8
    assert not Mailbox.parse("Ü <u@x.org>").needs_smtputf8
    assert repr(Mailbox("a@x.org", "A")) == "Mailbox('a@x.org', name='A')"


names = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1)


@given(name=names)
def test_any_name_survives_writing_and_parsing(name: str) -> None:
    # Atoms, a quoted string or encoded words: the written form reads back as the name.
    mailbox = Mailbox("user@example.com", name)
    assert Mailbox.parse(" ".join(mailbox.header_words())) == mailbox


def test_addresses_and_mailboxes_are_read_only() -> None:
    address = Address("user@example.com")
    mailbox = Mailbox(address, "User")
    for obj, attribute in [
        (address, "local"),
        (address, "domain"),
        (address, "ascii_domain"),
        (mailbox, "address"),
        (mailbox, "name"),
    ]:
        with pytest.raises(AttributeError):
            setattr(obj, attribute, "x")
    assert str(mailbox) == "User <user@example.com>"


address_like = st.text(
    st.sampled_from("abcXYZ019.-_+@\"' <>é[]:\\"), min_size=0, max_size=30
) | st.from_regex(r"[a-z0-9.+-]{1,70}@[a-z0-9.-]{1,70}", fullmatch=True)


def outcome(func: Callable[[], object]) -> tuple[str, object]:
    try:
        return ("ok", func())
    except InvalidInputError as exc:
        return ("refused", str(exc))


def parts(text: str) -> tuple[str, str, str]:
    address = Address(text)
    return (address.local, address.domain, address.ascii_domain)


@given(text=address_like)
def test_the_common_case_shortcut_agrees_with_the_full_check(text: str) -> None:
    # Address() takes a shortcut for plain ASCII addresses; _check() is the full check.
    full = outcome(lambda: _check(text, "address"))
    made = outcome(lambda: parts(text))
    if full[0] == "ok" and made[0] == "refused":  # the total length, checked after both
        assert "address is longer than 254 octets" in str(made[1])
    else:
        assert made == full
