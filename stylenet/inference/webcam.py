"""Live stylisation of a camera feed in an OpenCV window (optional: pip install "stylenet[webcam]")."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any

import numpy as np

from stylenet.errors import StylenetError
from stylenet.imageio import to_array, to_tensor
from stylenet.inference.model import Stylizer


def stylize_frame(stylizer: Stylizer, rgb: np.ndarray, settings) -> np.ndarray:
    """One camera frame, uint8 RGB (H, W, 3), stylized at its working size (`settings.size`/`scale`)."""
    from stylenet.inference.runner import check_size, process, resize, working_size

    frame = to_tensor(rgb).unsqueeze(0)  # (1, 3, H, W)
    size = working_size(*frame.shape[-2:], settings)
    check_size("the camera frame", tuple(frame.shape[-2:]), size)  # one line, as for a photo, not the network's error
    batch = resize(frame, size)
    return to_array(process(stylizer, batch, settings, settings.tile or "auto")[0])


@contextmanager
def _quiet_opencv(cv2):
    """OpenCV's own warnings held back meanwhile: a missing camera is said once, in our line, not in its
    "[ WARN:0@0.02] ... can't open camera by index" lines. Builds without `cv2.utils.logging` are left as they are."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def open_camera(camera: int) -> Any:
    """Camera `camera` opened (a `cv2.VideoCapture`); one StylenetError line without OpenCV or the camera.

    Cheap next to loading and compiling a model, so a command opens the camera first."""
    try:
        import cv2
    except ImportError as error:
        raise StylenetError('--webcam needs OpenCV: pip install "stylenet[webcam]"') from error
    with _quiet_opencv(cv2):
        capture = cv2.VideoCapture(camera)
    if not capture.isOpened():
        capture.release()
        raise StylenetError(f"--webcam {camera}: no camera could be opened with that index")
    return capture


def run_webcam(stylizer: Stylizer, camera: int | Any, settings) -> int:
    """Shows camera `camera` (its number, or the capture `open_camera` gave) stylised until q or Esc is pressed;
    prints the frame rate it reached."""
    capture = open_camera(camera) if isinstance(camera, int) else camera
    import cv2

    frames, started = 0, time.perf_counter()
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            shown = np.ascontiguousarray(stylize_frame(stylizer, bgr[..., ::-1], settings)[..., ::-1])  # OpenCV: BGR
            cv2.imshow("stylenet (q to quit)", shown)
            frames += 1
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                break
    finally:
        capture.release()
        cv2.destroyAllWindows()
    elapsed = time.perf_counter() - started
    print(f"{frames} frame(s), {frames / elapsed:.2f} frames/s")
    return 0
