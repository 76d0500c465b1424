"""Copy spooled instances out as ordinary .dcm files, for operators (the spool keeps most
instances inside its SQLite database, where DICOM tools cannot open them).

    python -m radflow.gateways.dicom.spool_export SPOOL_DIR STUDY_UID OUT_DIR [--sop SOP_UID ...]

Safe while the gateway runs: it only reads (WAL readers do not block the writer).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radflow.gateways.dicom.spool import Spool, _name


def export_study(spool: Spool, study_uid: str, out: Path, sops: set[str] | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for inst in spool.instances(study_uid):
        if sops and inst.sop_instance_uid not in sops:
            continue
        target = out / f"{_name(inst.sop_instance_uid)}.dcm"
        target.write_bytes(spool.read(inst.sop_instance_uid))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spool_dir", type=Path)
    parser.add_argument("study_uid")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--sop", action="append", help="only this SOP Instance UID (repeatable)")
    args = parser.parse_args(argv)
    if not (args.spool_dir / "index.sqlite").exists():
        print(f"no spool at {args.spool_dir}", file=sys.stderr)
        return 2
    spool = Spool(args.spool_dir)
    try:
        written = export_study(spool, args.study_uid, args.out_dir, set(args.sop or ()))
    finally:
        spool.close()
    print(f"{len(written)} instance(s) written to {args.out_dir}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
