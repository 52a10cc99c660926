"""Every package of scripts/rehearsal_wheels.txt imports with this python; else name each missing one with
its pinned version and exit 1. Plain Python on purpose (no afp_lib import: that would fail first, on the
first missing package, without naming the others)."""
import importlib
import sys


def missing(path: str) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split("#")[0].split()
            if not fields:
                continue
            if len(fields) != 2 or "==" not in fields[0]:
                sys.exit(f"{path}:{n}: expected '<distribution>==<version> <import name>', got {line.strip()!r}")
            try:
                importlib.import_module(fields[1])
            except Exception as e:  # noqa: BLE001 - any failure to import means the rehearsal cannot use it
                out.append(f"{fields[0]} (import {fields[1]}: {type(e).__name__}: {e})")
    return out


if __name__ == "__main__":
    gone = missing(sys.argv[1])
    if gone:
        print("gpu_rehearsal: this python cannot import packages the rehearsal needs:\n  " + "\n  ".join(gone)
              + f"\nbring their wheels in .whl/ (scripts/fetch_rehearsal_wheels.sh builds it from {sys.argv[1]})",
              file=sys.stderr)
        sys.exit(1)
    print(f"gpu_rehearsal: every package of {sys.argv[1]} imports")
