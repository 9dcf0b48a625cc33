"""Live stylisation of a camera feed in an OpenCV window (optional: pip install "stylenet[webcam]")."""

from __future__ import annotations

import time

import numpy as np

from stylenet.errors import StylenetError
from stylenet.imageio import to_array, to_tensor
from stylenet.inference.model import Stylizer


def run_webcam(stylizer: Stylizer, camera: int, settings) -> int:
    """Shows camera `camera` stylised until q or Esc is pressed; prints the frame rate it reached."""
    from stylenet.inference.runner import process, resize, working_size

    try:
        import cv2
    except ImportError as error:
        raise StylenetError('--webcam needs OpenCV: pip install "stylenet[webcam]"') from error
    capture = cv2.VideoCapture(camera)
    if not capture.isOpened():
        raise StylenetError(f"--webcam {camera}: no camera could be opened with that index")
    frames, started = 0, time.perf_counter()
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = to_tensor(bgr[..., ::-1]).unsqueeze(0)  # OpenCV frames are BGR
            batch = resize(rgb, working_size(*rgb.shape[-2:], settings))
            out = process(stylizer, batch, settings, settings.tile or "auto")[0]
            shown = np.ascontiguousarray(to_array(out)[..., ::-1])
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
