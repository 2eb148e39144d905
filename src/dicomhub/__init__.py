"""dicomhub: a light-weight DICOM server with a durable index."""

__version__ = "0.1.0"
