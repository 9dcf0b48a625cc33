"""Errors meant for people: each carries one line saying what is wrong and how to fix it."""


class StylenetError(Exception):
    """Base class; entry points print its message as a single line instead of a traceback."""


class ConfigError(StylenetError):
    """A setting, path or style that cannot work; raised before any training starts."""


class DataError(StylenetError):
    """A dataset that cannot feed training (missing root, no usable image, unreachable hub)."""
