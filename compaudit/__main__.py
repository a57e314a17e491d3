"""``python -m compaudit``: the same command line and exit codes as ``compaudit``."""

from compaudit.cli import main

if __name__ == "__main__":
    main(prog_name="python -m compaudit")
