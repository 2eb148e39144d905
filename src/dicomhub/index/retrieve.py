"""Which stored instances a C-MOVE or C-GET identifier selects (PS3.4 C.4.2.2.1, C.4.3.2.1).

A retrieve identifier holds the unique keys at and above its level; the key of the level is
required and may be a list of UIDs.  Unique keys above the level narrow the selection when
present and are not required (some SCUs send only the key of the level).
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicomhub.errors import IdentifierDoesNotMatchSOPClass
from dicomhub.index.attributes import UNIQUE_KEYS, Level
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.query import InformationModel, identifier_level
from dicomhub.index.repository import StoredInstance, _to_stored, stored_instance_select
from dicomhub.index.schema import LEVEL_TABLES, instances, patients, series, studies
from dicomhub.index.values import text_value

_UNIQUE_COLUMNS = {
    Level.PATIENT: patients.c.patient_id,
    Level.STUDY: studies.c.study_instance_uid,
    Level.SERIES: series.c.series_instance_uid,
    Level.IMAGE: instances.c.sop_instance_uid,
}


def _uids(identifier: Dataset, keyword: str) -> list[str]:
    value = text_value(identifier.get(keyword))
    uids = [v.strip() for v in value.split("\\") if v.strip()]
    if any("*" in v or "?" in v for v in uids):
        raise IdentifierDoesNotMatchSOPClass(f"{keyword} may not hold wildcards in a retrieve")
    return uids


class RetrieveLocator:
    """Resolves retrieve identifiers to stored instances, in study/series/instance order."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db

    def instances(self, identifier: Dataset, model: InformationModel) -> list[StoredInstance]:
        """The instances selected; raises ``IdentifierDoesNotMatchSOPClass`` when invalid."""
        level = identifier_level(identifier, model)
        query = stored_instance_select().join(patients, studies.c.patient_fk == patients.c.id)
        for upper in model.levels[: model.levels.index(level) + 1]:
            keyword = UNIQUE_KEYS[upper]
            uids = _uids(identifier, keyword)
            if not uids:
                if upper is level:
                    raise IdentifierDoesNotMatchSOPClass(
                        f"a {level} level retrieve needs {keyword}"
                    )
                continue
            query = query.where(_UNIQUE_COLUMNS[upper].in_(uids))
        order = [LEVEL_TABLES[lvl].c.id for lvl in (Level.STUDY, Level.SERIES)]
        query = query.order_by(*order, instances.c.instance_number, instances.c.id)
        with self.db.read() as conn:
            return [_to_stored(row) for row in conn.execute(query)]

    def by_uid(self, uid: str) -> list[StoredInstance]:
        """The instances of the study, series or instance with this UID (tried in that
        order); empty when the archive has none."""
        for level in (Level.STUDY, Level.SERIES, Level.IMAGE):
            identifier = Dataset()
            identifier.QueryRetrieveLevel = level.value
            setattr(identifier, UNIQUE_KEYS[level], uid)
            found = self.instances(identifier, InformationModel.STUDY_ROOT)
            if found:
                return found
        return []
