import pytest

import resilient_scan as rs
from resilient_scan import _text


class NastyError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_an_exception_whose_str_raises_still_has_a_description():
    assert _text.describe_error(NastyError()) == "NastyError: <unprintable NastyError>"
    assert _text.error_message(NastyError()) == "<unprintable NastyError>"


def test_describe_error_keeps_the_type():
    assert _text.describe_error(KeyError("MSFT")) == "KeyError: 'MSFT'"
    assert _text.describe_error(ValueError()) == "ValueError"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://api.example.com/q?symbol=AAPL&apikey=S3CRET failed", "S3CRET"),
        ("https://x.io/v1?token=abc123&x=1", "abc123"),
        ("connect to postgres://scanner:hunter2@db:5432 refused", "hunter2"),
        ("password=letmein", "letmein"),
        ('{"api_key": "k-9f8e7d"}', "k-9f8e7d"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y", "eyJhbGciOiJIUzI1NiJ9"),
        ("?access_token=zz-top&key=AIzaSyA", "AIzaSyA"),
    ],
)
def test_credentials_in_error_texts_are_redacted_by_default(text, secret):
    redacted = _text.redact(text)
    assert secret not in redacted
    assert "***" in redacted


def test_redaction_keeps_the_rest_of_the_message():
    assert (
        _text.redact("GET https://api.example.com/q?symbol=AAPL&apikey=S3CRET: HTTP 500")
        == "GET https://api.example.com/q?symbol=AAPL&apikey=***: HTTP 500"
    )
    assert _text.redact("KeyError: 'MSFT'") == "KeyError: 'MSFT'"
    assert _text.redact("monkey business") == "monkey business"


def test_redaction_has_a_documented_switch():
    rs.set_redaction(False)
    assert not rs.redaction_enabled()
    assert _text.redact("?apikey=S3CRET") == "?apikey=S3CRET"
    rs.set_redaction(True)
    assert _text.redact("?apikey=S3CRET") == "?apikey=***"


def test_control_characters_are_escaped_visibly():
    forged = "HTTP 500\n✓ payments: 12 candidates\x1b[2J\r\x85"
    shown = _text.escape_control(forged)
    assert "\n" not in shown
    assert "\x1b" not in shown
    assert "\r" not in shown
    assert "\x85" not in shown
    assert shown == "HTTP 500\\n✓ payments: 12 candidates\\x1b[2J\\r\\x85"


def test_long_texts_are_capped_with_a_count():
    assert _text.cap("x" * 510, 500) == "x" * 500 + "… (+10 chars)"
    assert _text.for_console("a\nb" * 300).endswith("chars)")


def test_describe_error_caps_at_the_message_limit():
    described = _text.describe_error(ValueError("y" * 10_000))
    assert len(described) < 2100
    assert described.endswith("chars)")


def test_a_traceback_has_no_local_variables():
    def fails(password: str) -> None:
        secret_local = password * 2  # noqa: F841 - a local the traceback must not show
        raise ValueError("bad")

    password = "hun" + str(len("ter2")) + "x"  # built at run time, so not in the quoted source
    try:
        fails(password)
    except ValueError as exc:
        text = _text.format_traceback(exc)
    assert "ValueError: bad" in text
    assert password not in text


def test_a_huge_message_is_redacted_only_as_far_as_it_is_shown(monkeypatch):
    read: list[int] = []
    redact = _text.redact

    def measuring(text: str) -> str:
        read.append(len(text))
        return redact(text)

    monkeypatch.setattr(_text, "redact", measuring)
    message = "token: abc " * 500_000  # 5.5 MB of things redaction rewrites
    described = _text.describe_error(ValueError(message))
    assert max(read) < 3000  # the whole 5.5 MB went through every pattern before
    assert described.startswith("ValueError: token: *** token: ***")
    assert described.endswith("chars)")
    assert len(described) < 2100


def test_a_secret_across_the_cap_is_still_redacted():
    message = "x" * 1995 + " apikey=S3CRETS3CRET"
    described = _text.describe_error(ValueError(message))
    assert "S3CRET" not in described
