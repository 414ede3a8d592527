"""``python -m rlsim`` = the ``rlsim`` command."""

from rlsim.cli import main

if __name__ == "__main__":
    main()
