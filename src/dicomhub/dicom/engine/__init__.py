"""dicomhub's own DICOM network engine on asyncio (PS3.8 upper layer, PS3.7 DIMSE).

It reads each PDU into one buffer, writes C-STORE data set fragments straight into a staging
file, and hands complete requests to the same services the pynetdicom adapter serves, running
them in a thread pool so fsync and database work never block the event loop.
"""
