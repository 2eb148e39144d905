"""One module per DICOM service; each is a plain handler built once with its dependencies."""
