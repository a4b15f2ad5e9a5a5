"""``python -m tech7_witness``: the same as the ``tech7-witness`` command."""

from tech7_witness.cli import main

raise SystemExit(main())
