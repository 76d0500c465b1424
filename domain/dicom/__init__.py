"""DICOM mapping without sockets: worklist items, C-FIND matching, MPPS parsing."""
