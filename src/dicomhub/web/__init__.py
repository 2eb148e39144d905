"""The web side of dicomhub: one ASGI app (``web.app``) served by ``web.server``.

Routes translate HTTP into calls of the archive's own code (ingest path, index, blob store,
DICOM SCU) and back; failures become HTTP answers in ``web.problems`` only.
"""
