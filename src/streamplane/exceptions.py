"""The root of streamplane's exceptions; each package adds its own below it."""


class StreamplaneError(Exception):
    """Base class of every error streamplane raises on purpose."""


class ConfigError(StreamplaneError):
    """A setting is missing or invalid; the message names the environment variable."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


class TransientError(StreamplaneError):
    """A failure that may go away on retry (a broker briefly unreachable, say)."""


class PermanentError(StreamplaneError):
    """A failure that retrying will not fix."""
