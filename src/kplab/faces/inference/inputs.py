"""What `kplab predict` and `kplab bench` are given: files and folders -> the images and videos in them."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from kplab.faces.training.images import IMAGE_EXTENSIONS
from kplab.faces.inference.video import VIDEO_EXTENSIONS


def expand_inputs(inputs: Iterable[str | Path]) -> tuple[list[tuple[str, Path]], list[str]]:
    """INPUT arguments -> ([(kind, path)], problems), kind "image" or "video", in the order given.

    Folders are walked recursively (sorted; hidden entries skipped) for image and video files; a named
    file is taken as a video by its extension and as an image otherwise (reading it tells whether it is).
    """
    items, problems = [], []
    for given in map(Path, inputs):
        if given.is_dir():
            found = [p for p in sorted(given.rglob("*"))
                     if p.is_file() and not any(part.startswith(".") for part in p.relative_to(given).parts)
                     and p.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS]
            if not found:
                problems.append(f"{given}: no images or videos in this folder "
                                f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))})")
            items += [("video" if p.suffix.lower() in VIDEO_EXTENSIONS else "image", p) for p in found]
        elif given.is_file():
            items.append(("video" if given.suffix.lower() in VIDEO_EXTENSIONS else "image", given))
        else:
            problems.append(f"{given}: no such file or folder")
    return items, problems
