"""The ``dicomhub`` command."""
