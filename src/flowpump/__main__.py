"""``python -m flowpump``."""

from .cli import main

raise SystemExit(main())
