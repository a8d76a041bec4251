"""Exception types of svit. Every message names the file, record or argument and says what to do."""


class SvitError(Exception):
    """Base class of every error svit raises on purpose."""


class SvitFormatError(SvitError):
    """An input file is not in the expected format (truncated JSON, wrong top-level type...)."""


class SvitInputError(SvitError):
    """An argument or input path is missing or inconsistent."""


class SvitQualityError(SvitError):
    """Too many records were dropped by the quality gates: the input is likely not what it claims."""
