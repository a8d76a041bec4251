"""Exception types of svit. Every message names the file, record or argument and says what to do."""

import errno


class SvitError(Exception):
    """Base class of every error svit raises on purpose."""


class SvitFormatError(SvitError):
    """An input file is not in the expected format (truncated JSON, wrong top-level type...)."""


class SvitInputError(SvitError):
    """An argument or input path is missing or inconsistent."""


class SvitQualityError(SvitError):
    """Too many records were dropped by the quality gates: the input is likely not what it claims."""


def _chain(err: BaseException):
    """`err` and the exceptions it was raised `from` (`datasets` and process pools wrap causes so),
    outermost first. Not the ones it was merely raised while handling: a defect raised inside an
    `except SvitError` block is a defect, not the user's error."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__


_OS_ADVICE = {
    errno.ENOSPC: "free some space or choose another output folder",
    errno.EDQUOT: "free some space or choose another output folder",
    errno.EFBIG: "free some space or choose another output folder (a file size limit was hit)",
    errno.EACCES: "choose a path you may read and write, or fix its permissions",
    errno.EPERM: "choose a path you may read and write, or fix its permissions",
    errno.EROFS: "the file system is read-only; choose another output folder",
    errno.ENOTDIR: "a part of this path is a file, not a folder; check the path",
    errno.EISDIR: "this is a folder; pass a file",
    errno.ENOENT: "check the path",
}


def describe_error(err: BaseException) -> tuple[str, bool]:
    """(one-line message, whether it is the user's to fix) for any exception a command raised.

    Our own errors say what to do already. Errors raised inside `datasets` generation or another
    library wrap the real cause: the chain is searched for it. File-system errors are the user's
    (a full disk, a folder that is a file); anything else is a defect of svit. Secrets are removed.
    """
    from svit_dataset.secrets import redact

    for cause in _chain(err):
        if isinstance(cause, SvitError):
            return redact(_one_line(str(cause))), True
    for cause in _chain(err):
        if isinstance(cause, OSError) and not isinstance(cause, ConnectionError):
            where = f": {cause.filename}" if cause.filename else ""
            if cause.errno in _OS_ADVICE:
                text = f"{cause.strerror}{where}; {_OS_ADVICE[cause.errno]}"
            else:
                text = f"{cause.strerror or cause}{where}"
            return redact(_one_line(text)), True
    return redact(_one_line(f"{type(err).__name__}: {err}")), False


def _one_line(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
