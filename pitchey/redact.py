"""One redaction function for everything the service shows or logs about its configuration:
`/config`, `/status` (probe errors) and log lines.

It hides, wherever they occur in a text:
- the password of a URL's userinfo (`scheme://user:***@host`);
- the value of every query or fragment parameter whose name looks like a credential
  (password, secret, key, token, auth, credential, signature, ...), case-insensitive and also
  inside parameter values that are themselves (once or several times) URL-encoded URLs or
  query strings;
- `name=value` / `name: value` pairs with such names outside URLs (libpq keyword DSNs,
  exception messages) and the credential after `Bearer`/`Basic`;
- every value of a `k=v,k2=v2` list when `every_value` is set (OTLP headers: which header
  carries the credential depends on the vendor, so none is shown);
- any of the `known` secret strings, raw or percent-encoded, wherever they still appear.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote_plus

__all__ = ["MASK", "RedactingFilter", "looks_secret", "redact", "redact_logs"]

MASK = "***"
# Substrings of a parameter name that mark its value as a credential (over-matching, e.g.
# "monkey", only hides a harmless value; under-matching would leak one).
_SECRET_PARTS = ("pass", "pwd", "secret", "key", "token", "auth", "credential", "signature",
                 "session", "cookie", "private")
_SECRET_NAMES = frozenset({"pw", "sig", "sas", "code"})
_MAX_DEPTH = 4
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_SCHEME_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*)(.*)$", re.DOTALL)
_PAIR = re.compile(r"([A-Za-z0-9_.\-%]+)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s&;,]+)")
_SCHEME_CREDENTIAL = re.compile(r"\b(Bearer|Basic|Token|ApiKey|Api-Token)(\s+)([^\s,;]+)",
                                re.IGNORECASE)


def looks_secret(name: str) -> bool:
    """Whether a parameter, header or setting name looks like it holds a credential."""
    lowered = unquote_plus(name).strip().lower()
    compact = re.sub(r"[^a-z0-9]", "", lowered)
    return compact in _SECRET_NAMES or any(part in compact for part in _SECRET_PARTS)


def redact(
    text: str | None, *, known: Iterable[str | None] = (), every_value: bool = False
) -> str | None:
    """`text` with every credential it contains replaced by `***` (None stays None)."""
    if text is None:
        return None
    if every_value:
        shown = ",".join(_mask_pair_value(item) for item in text.split(","))
    else:
        shown = _redact_text(text, 0)
    for secret in known:
        # a known secret is hidden even where no rule above recognised it
        if secret and len(secret) >= 4:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                shown = shown.replace(form, MASK)
    return shown


def _mask_pair_value(item: str) -> str:
    name, sep, _ = item.partition("=")
    return f"{name}={MASK}" if sep else MASK if item.strip() else item


def _redact_text(text: str, depth: int) -> str:
    """URLs by their structure; the text between them by the name=value rules."""
    shown: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        shown.append(_redact_plain(text[position:match.start()], depth))
        shown.append(_redact_url(match.group(0), depth))
        position = match.end()
    shown.append(_redact_plain(text[position:], depth))
    return "".join(shown)


def _redact_plain(text: str, depth: int) -> str:
    text = _SCHEME_CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return _PAIR.sub(lambda match: _redact_pair(match, depth), text)


def _redact_pair(match: re.Match[str], depth: int) -> str:
    name, sep, value = match.group(1), match.group(2), match.group(3)
    if value == MASK or value.startswith(MASK):
        return match.group(0)
    if looks_secret(name):
        return f"{name}{sep}{MASK}"
    return f"{name}{sep}{_redact_value(value, depth)}"


def _redact_url(url: str, depth: int) -> str:
    parts = _SCHEME_AUTHORITY.match(url)
    if parts is None:
        return url
    scheme, authority, rest = parts.groups()
    userinfo, at, host = authority.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        authority = f"{user}:{MASK}@{host}" if colon else f"{user}@{host}"
    return scheme + authority + _redact_rest(rest, depth)


def _redact_rest(rest: str, depth: int) -> str:
    """Path, query and fragment: parameters of the query and fragment are checked."""
    path, hash_, fragment = rest.partition("#")
    path, question, query = path.partition("?")
    shown = path
    if question:
        shown += "?" + _redact_query(query, depth)
    if hash_:
        shown += "#" + _redact_query(fragment, depth)
    return shown


def _redact_query(query: str, depth: int) -> str:
    pieces = re.split(r"([&;])", query)
    for index in range(0, len(pieces), 2):
        name, sep, value = pieces[index].partition("=")
        if not sep:
            pieces[index] = _redact_value(name, depth)
        elif looks_secret(name):
            pieces[index] = f"{name}={MASK}"
        else:
            pieces[index] = f"{name}={_redact_value(value, depth)}"
    return "".join(pieces)


def _redact_value(value: str, depth: int) -> str:
    """A parameter value. One that decodes to something else (an encoded URL or query string,
    possibly encoded several times) is decoded fully, redacted and encoded once again;
    nesting deeper than `_MAX_DEPTH` is hidden whole."""
    decoded = value
    for _ in range(_MAX_DEPTH):
        once = unquote_plus(decoded)
        if once == decoded:
            break
        decoded = once
    else:
        if unquote_plus(decoded) != decoded:
            return MASK
    if "=" not in decoded and "://" not in decoded and " " not in decoded:
        return value
    if depth >= _MAX_DEPTH:
        return MASK
    inner = _redact_text(decoded, depth + 1)
    if inner == decoded:
        return value
    return inner if decoded == value else quote(inner, safe="")


class RedactingFilter(logging.Filter):
    """A handler filter: every record's message and traceback go through `redact` before
    they are written (a driver's exception may quote the DSN it was given; an access log
    line quotes the query string a client sent)."""

    def __init__(self, known: Iterable[str | None] = ()) -> None:
        super().__init__()
        self._known = tuple(secret for secret in known if secret)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = redact(message, known=self._known) or ""
        if shown != message:
            record.msg, record.args = shown, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, known=self._known)
        return True


def redact_logs(known: Iterable[str | None] = ()) -> None:
    """Put a `RedactingFilter` on every handler of the root logger (call it after logging
    is configured)."""
    redacting = RedactingFilter(known)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(each, RedactingFilter) for each in handler.filters):
            handler.addFilter(redacting)
