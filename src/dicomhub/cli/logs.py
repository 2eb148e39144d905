"""Logging set-up shared by the CLI commands."""

from __future__ import annotations

import logging
import sys
import warnings


def setup_logging(level: str) -> None:
    """Log lines with time, level and logger to stderr.

    Libraries are kept quiet unless DEBUG: pynetdicom and alembic at WARNING, pydicom's
    complaints about odd values at ERROR (dicomhub reports what it rejects itself).
    """
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    if level.upper() != "DEBUG":
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("pydicom").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=r"pydicom\..*")
