"""Keep secrets out of every log line, error message and manifest.

RPC and IPFS endpoints often carry credentials in the URL: ``https://user:pass@host/``,
``https://host/?apikey=...`` or a project id as a path segment (``https://host/v3/<id>``).
:func:`redact` rewrites every URL inside a text so that none of these survive:

* userinfo becomes ``***@``;
* every query value and the fragment become ``***`` (the parameter names stay, for debugging);
* a ``?name=value`` / ``&name=value`` pair anywhere in the text (also outside a full URL, as in
  requests' "url: /?apikey=..." messages) has its value masked;
* a path segment of 20 or more characters that mixes letters and digits (an API key or project
  id, never a normal path word) becomes ``***``.

:func:`install_log_redaction` applies it to every log record created in the process (message
and traceback), whatever handler later writes it; the CLI installs it before doing anything.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

_URL = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@'\"<>]*@)?(?P<rest>[^\s'\"<>]*)")
#: A query parameter outside a full URL (requests prints "url: /path?apikey=..." without the host).
_QUERY_PARAM = re.compile(r"(?<=[?&])(?P<name>[A-Za-z0-9_.-]+)=(?P<value>[^&\s'\"<>)#]+)")
_TOKEN_SEGMENT = re.compile(r"^(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}$")
MASK = "***"


def _redact_rest(rest: str) -> str:
    rest, hash_sign, fragment = rest.partition("#")
    path, question, query = rest.partition("?")
    head, slash, tail = path.partition("/")  # host[:port] / path
    segments = [MASK if _TOKEN_SEGMENT.match(s) else s for s in tail.split("/")] if slash else []
    out = head + (slash + "/".join(segments) if slash else "")
    if question:
        pairs = []
        for pair in query.split("&"):
            name, eq, value = pair.partition("=")
            if eq:
                pairs.append(f"{name}={MASK}" if value else pair)
            else:  # a bare token (``?SECRET``)
                pairs.append(MASK if pair else pair)
        out += "?" + "&".join(pairs)
    if hash_sign:
        out += "#" + (MASK if fragment else "")
    return out


def redact(text: Any) -> str:
    """``text`` (or ``str(text)``) with every URL's userinfo, query values and key-like path segments masked."""
    text = str(text)
    if "://" in text:
        text = _URL.sub(lambda m: m["scheme"] + (MASK + "@" if m["userinfo"] else "") + _redact_rest(m["rest"]), text)
    if "=" in text:
        text = _QUERY_PARAM.sub(lambda m: f"{m['name']}={MASK}", text)
    return text


def redact_url(url: str) -> str:
    """A URL safe to print or to write into a manifest."""
    return redact(url)


_installed = False


def install_log_redaction() -> None:
    """Redact every log record of this process at creation (message, arguments and traceback)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: leave it to logging's own handling
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    logging.setLogRecordFactory(factory)
