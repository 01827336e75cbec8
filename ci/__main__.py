"""Entry point of `python -m ci`."""

import sys

try:
    from ci.cli import main
except KeyboardInterrupt:  # Ctrl-C while importing: still one line and 128 + SIGINT, no traceback
    print("interrupted: `python -m ci` stopped by Ctrl-C before it started", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
