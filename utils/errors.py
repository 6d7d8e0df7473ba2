"""Errors written for the user (:class:`UserError`), and the one way any error is put on one line.

>>> class BadTake(UserError, ValueError):
...     pass
>>> one_line(BadTake("The file 'a.wav' is silent.\\n  Record again."))
"The file 'a.wav' is silent. Record again."
>>> describe_error(BadTake("The file 'a.wav' is silent.")), describe_error(ZeroDivisionError("division by zero"))
("The file 'a.wav' is silent.", 'ZeroDivisionError: division by zero')
"""

from __future__ import annotations


class UserError(Exception):
    """An error whose message is one sentence for the user: what is wrong and what to do about it."""


#: Built-in errors whose messages name their cause well enough to show as they are (a missing file, a
#: full disk, a value the standard library refused); project errors say so by deriving from UserError.
SELF_EXPLAINING_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, OSError)

#: Longest reason quoted inside another sentence ("Cannot read 'a.wav' as audio (<reason>).").
REASON_LIMIT = 160


def one_line(error_or_text: object, limit: int | None = None) -> str:
    """The message of an exception (or any text) on one line, of at most ``limit`` characters if given
    (the first sentence when it fits, else cut with ``...``).

    >>> one_line("Cannot read 'a.wav'.\\nFormat not recognised.")
    "Cannot read 'a.wav'. Format not recognised."
    >>> one_line("Weights only load failed. " + "x" * 200, limit=60)
    'Weights only load failed'
    >>> one_line(KeyError("speaker")), one_line(RuntimeError())
    ('speaker', 'RuntimeError')
    """
    if isinstance(error_or_text, KeyError) and error_or_text.args:
        error_or_text = error_or_text.args[0]
    text = " ".join(str(error_or_text).split())
    if not text and isinstance(error_or_text, BaseException):
        return type(error_or_text).__name__
    if limit is None or len(text) <= limit:
        return text
    first_sentence = text.split(". ")[0].rstrip(".")
    return first_sentence if len(first_sentence) <= limit else text[: limit - 3] + "..."


def describe_error(error: BaseException, limit: int | None = None) -> str:
    """Its message when ``error`` explains itself (:data:`SELF_EXPLAINING_ERRORS`), else ``Type: message``."""
    message = one_line(error, limit)
    if isinstance(error, SELF_EXPLAINING_ERRORS) or message == type(error).__name__:
        return message
    return f"{type(error).__name__}: {message}"


def os_reason(error: BaseException, limit: int = REASON_LIMIT) -> str:
    """The ``strerror`` of the ``OSError`` behind ``error``, else :func:`one_line` of it."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return one_line(error, limit)
