"""The DICOM gateway: one AE for Verification, Modality Worklist, MPPS and Storage.

`server.py` wires it; `worklist.py`/`mpps.py` (C-FIND, N-CREATE/N-SET) and `storage.py`
(C-STORE) handle; `*_store.py`/`spool.py` keep the local state; `bridge.py` crosses from
pynetdicom's threads to the asyncio Temporal client.
"""
