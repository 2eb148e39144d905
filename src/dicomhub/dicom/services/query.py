"""Query/Retrieve FIND SCP (Patient Root and Study Root C-FIND)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pydicom.dataset import Dataset

from dicomhub.config import Service
from dicomhub.dicom.peers import AccessPolicy, AssociationInfo
from dicomhub.dicom.status import CANCELLED, PENDING, SUCCESS
from dicomhub.index.query import FindService, InformationModel


class QueryService:
    """Yields (status, identifier) pairs: pending matches, then the final status."""

    def __init__(self, finder: FindService, access: AccessPolicy) -> None:
        self.finder = finder
        self.access = access

    def find(
        self,
        association: AssociationInfo,
        identifier: Dataset,
        model: InformationModel,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[tuple[int, Dataset | None]]:
        """Run the query; stops with 0xFE00 as soon as a C-CANCEL arrives."""
        self.access.check_service(association, Service.QUERY)
        for match in self.finder.find(identifier, model):
            if is_cancelled():
                yield CANCELLED, None
                return
            yield PENDING, match
        yield SUCCESS, None
