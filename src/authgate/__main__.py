"""``python -m authgate``: the same command line as ``authgate``."""

from authgate.cli import main

if __name__ == "__main__":
    main()
