"""Secrets kept out of the access log: an invitation link's token is in its path
(``/invite/<token>``, a link sent by e-mail cannot be a POST), so the path is redacted in
uvicorn's access log records before any handler formats them."""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
# Paths whose last segment is a secret; query parameters that carry one.
_SECRET_PATH = re.compile(r"(/invite/)[^/?#\s]+")
_SECRET_QUERY = re.compile(r"([?&](?:token|key|secret|password)=)[^&#\s]+", re.IGNORECASE)


def redact(text: str) -> str:
    return _SECRET_QUERY.sub(r"\1…", _SECRET_PATH.sub(r"\1…", text))


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_access_log_filter() -> None:
    """Idempotent: the filter is added to uvicorn's access logger once."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
