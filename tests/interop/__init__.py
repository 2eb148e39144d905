"""Interoperability tests: a real ``dicomhub serve`` driven by DCMTK, Orthanc and pynetdicom."""
