"""Video and image files, with one clear error when one cannot be read."""

from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np

# --- video files


class VideoError(OSError):
    """A video or image file that cannot be read."""


def read_video(path: str, max_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR frame) of a video file, with one clear error when it cannot be read."""
    import os

    if not os.path.exists(path):
        raise VideoError(f"{path}: no such file")
    if os.path.isdir(path):
        raise VideoError(f"{path}: is a folder, expected a video file")
    cap = cv2.VideoCapture(path)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"{path}: cannot decode any frame (not a video, or a codec OpenCV lacks)")
        i = 0
        while ok and frame is not None:
            yield i, frame
            i += 1
            if max_frames is not None and i >= max_frames:
                return
            ok, frame = cap.read()
    finally:
        cap.release()


def video_fps(path: str, default: float = 30.0) -> float:
    """A video file's frame rate (``default`` when the container does not say)."""
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return float(fps) if fps and 0 < fps < 1000 else default


def read_image(path: str) -> np.ndarray:
    """A BGR image file, with one clear error when it cannot be read."""
    import os

    if not os.path.exists(path):
        raise VideoError(f"{path}: no such file")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise VideoError(f"{path}: not an image OpenCV can read")
    return image
