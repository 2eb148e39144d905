"""Verification SOP Class (C-ECHO) SCP."""

from __future__ import annotations

from dicomhub.config import Service
from dicomhub.dicom.peers import AccessPolicy, AssociationInfo


class EchoService:
    """Answers C-ECHO; success means the AE may use the verification service."""

    def __init__(self, access: AccessPolicy) -> None:
        self.access = access

    def echo(self, association: AssociationInfo) -> None:
        """Raise ``NotAuthorized`` if the caller may not verify; else succeed."""
        self.access.check_service(association, Service.VERIFICATION)
