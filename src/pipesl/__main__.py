"""``python -m pipesl``: the command-line interface."""

from pipesl.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
