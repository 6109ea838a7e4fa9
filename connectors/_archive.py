"""Move files a file-drop connector has read into its archive, once their cursor is saved.

Shared by the CSV and X12 drops: a file is archived only if it still has the content that was
read (a same-named re-export is read first), and never overwrites an archived namesake.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def archive_read_files(inbox: Path, archive: Path, processed: dict[str, str], *,
                       connector: str, unchecked_prefix: str | None = None) -> set[str]:
    """Archive ``processed`` (file name → sha256 of what was read); names moved or gone.

    Digests starting with ``unchecked_prefix`` stand for files too large to hash and are
    archived by name alone.
    """
    if not processed:
        return set()
    archive.mkdir(parents=True, exist_ok=True)
    moved = set()
    for file_name, digest in processed.items():
        source = inbox / file_name
        try:
            data = source.read_bytes()
        except FileNotFoundError:
            moved.add(file_name)
            continue
        except OSError:
            continue
        unchecked = unchecked_prefix is not None and digest.startswith(unchecked_prefix)
        if not unchecked and hashlib.sha256(data).hexdigest() != digest:
            continue  # replaced by a new file of the same name: it will be read first
        target = archive / file_name
        counter = 1
        while target.exists():
            target = archive / f"{source.stem}.{counter}{source.suffix}"
            counter += 1
        try:
            source.replace(target)
            moved.add(file_name)
        except OSError as exc:
            log.warning("%s: cannot archive %s (%s)", connector, file_name, exc)
    return moved
