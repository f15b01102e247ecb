"""Repair reference weight files whose batch-norm running statistics are inf or NaN.

    RESNET_NB_DATA=path/to/cifar10 python scripts/repair_reference_bn.py [reference/]

The first export of the reference runs stored every tensor in float16, and the running
variance of plain-56's first batch-norm layers exceeded float16's range (inf), which made the
stored network score about 15 points below its own history. This re-estimates only those
statistics from training images (resnet_nb.reproduce.repair_running_statistics), then
rewrites MANIFEST.json. Files that need nothing are left as they are.
"""
from __future__ import annotations

import sys
from pathlib import Path

from resnet_nb import load_cifar10
from resnet_nb.reproduce import WEIGHTS, repair_running_statistics, write_manifest


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "reference")
    train = load_cifar10().train
    for path in sorted((out / WEIGHTS).glob("*.pt")):
        record = repair_running_statistics(path, train)
        print(f"{path.name}: " + (f"re-estimated {', '.join(record['layers'])} on "
                                  f"{record['images']:,} training images" if record
                                  else "nothing to repair"))
    write_manifest(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
