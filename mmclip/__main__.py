"""``python -m mmclip …`` (also what ``torchrun -m mmclip …`` runs): the command line."""

import sys

from mmclip.cli import main

if __name__ == "__main__":
    sys.exit(main())
