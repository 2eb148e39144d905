"""Modality Worklist Information Model - FIND SCP (PS3.4 K, 1.2.840.10008.5.1.4.31).

Matching and responses are the index's (``index.worklist_query``); this handler adds who may
ask, which statuses are answered (``worklist_statuses``) and the calling-AE rule
(``worklist_filter_by_calling_ae``):

* ``when_empty`` (default): a query that does not match on ScheduledStationAETitle (the key
  is absent, zero-length or ``*``, in the step or at the top level) gets only the items
  scheduled for the calling AE title (one of the item's ScheduledStationAETitle values) and
  the items scheduled for no station; a query naming a station gets what it names;
* ``always``: every query gets only those items, whatever station it names;
* ``never``: the query's keys alone decide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from pydicom.dataset import Dataset

from dicomhub.config import Service, Settings
from dicomhub.dicom.peers import AccessPolicy, AssociationInfo
from dicomhub.dicom.status import CANCELLED, PENDING, SUCCESS
from dicomhub.index.worklist import WorklistStatus
from dicomhub.index.worklist_query import WorklistFinder, station_requested

LOG = logging.getLogger("dicomhub.dicom")


class WorklistService:
    """Yields (status, identifier) pairs: pending matches, then the final status."""

    def __init__(self, finder: WorklistFinder, access: AccessPolicy, settings: Settings) -> None:
        self.finder = finder
        self.access = access
        self.statuses = [WorklistStatus(s) for s in settings.worklist_statuses]
        self.station_filter = settings.worklist_filter_by_calling_ae

    def station_for(self, association: AssociationInfo, identifier: Dataset) -> str | None:
        """The AE title the items must be scheduled for, None when any station goes."""
        if self.station_filter == "never":
            return None
        if self.station_filter == "when_empty" and station_requested(self.finder.keys(identifier)):
            return None
        return association.calling_ae_title.strip()

    def find(
        self,
        association: AssociationInfo,
        identifier: Dataset,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[tuple[int, Dataset | None]]:
        """Run the query; stops with 0xFE00 as soon as a C-CANCEL arrives."""
        self.access.check_service(association, Service.WORKLIST)
        station = self.station_for(association, identifier)
        if station is not None:
            LOG.debug("worklist query from %s: items of station %s only", association, station)
        for match in self.finder.find(identifier, statuses=self.statuses, station=station):
            if is_cancelled():
                yield CANCELLED, None
                return
            yield PENDING, match.identifier
        yield SUCCESS, None
