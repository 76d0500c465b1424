"""HL7 v2 translation, pure (no I/O): bytes -> text -> parsed message -> domain commands, and ACKs.

decode.py   bytes/charsets, line endings, batches, escape sequences
parse.py    python-hl7 parsing (the hot path) and 1-based field access
mapping.py  parsed message -> Hl7Command (the one place HL7 fields meet the order model)
ack.py      ACK messages (MSA/ERR) built by hand, in the sender's delimiters and charset
"""
