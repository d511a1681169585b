"""``python -m obscura_ref``: the ``obscura-ref`` command."""

from .cli import main

raise SystemExit(main())
