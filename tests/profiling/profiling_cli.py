"""Helper for the CLI tests (not a test module): run ``pipesl`` in-process."""

from __future__ import annotations


def run_cli(*args: str) -> str:
    """Run ``pipesl ARGS`` in-process; return its stdout (the command must succeed)."""
    from typer.testing import CliRunner

    import pipesl.cli  # noqa: F401  registers every command on the app
    from pipesl.cli.app import app

    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.stdout
