"""`python -m pyrunc ...`: the same as the `pyrunc` console script."""
from pyrunc.cli import main

if __name__ == "__main__":
    main()
