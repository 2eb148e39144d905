"""Everything that speaks the DICOM network protocol."""
