"""The package's exception and warning classes."""


class InputError(ValueError):
    """Bad input: the command line's one-line message (it would exit with status 2)."""


class PanelbootWarning(UserWarning):
    """A warning the command line prints on stderr (`panelboot: warning: ...`)."""
