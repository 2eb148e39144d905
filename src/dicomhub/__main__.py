"""Allow ``python -m dicomhub``."""

from dicomhub.cli.main import main

main()
