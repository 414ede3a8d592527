"""``python -m rlsim`` = the ``rlsim`` command."""

from rlsim.report.cli import main

if __name__ == "__main__":
    main()
