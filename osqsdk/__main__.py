"""``python -m osqsdk``: the same command line as the ``osqsdk`` script."""

from osqsdk.cli import main

raise SystemExit(main())
