"""TensorFlow without its native chatter in the user's terminal.

``TF_CPP_MIN_LOG_LEVEL`` no longer covers everything TensorFlow 2.21 prints: at import
absl writes ``WARNING: All log messages before absl::InitializeLog() ...`` and the oneDNN
``I0000 ... port.cc:153]`` line to descriptor 2 regardless, the converter prints
``fully_quantize: 0, inference_type: 6, ...`` from C++, and Python adds the absl
``trackable_obj`` deprecation and a representative-dataset ``UserWarning``. None of it is
ours or helps a user. ``quiet_tensorflow()`` imports TensorFlow and Keras inside
``edge.native.quiet()`` (so later imports are silent), and ``converting()`` wraps a
conversion; ``--verbose`` where a command has it (``edge.native.show``) lets it all through.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from edge.native import quiet

TF_LOG_LEVEL = "2"
"""TensorFlow's own C++ log level: warnings and errors only."""
QUIET_WARNINGS = ("Statistics for quantized inputs were expected",)
"""Python warnings the int8 converter raises for every float-input model (ours have float I/O by design)."""


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras once, with their import-time native lines hidden."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
    with quiet():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    logging.getLogger("absl").setLevel(logging.ERROR)
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


@contextmanager
def converting() -> Iterator[None]:
    """Around ``TFLiteConverter.convert()``: its C++ summary line stays out of the terminal."""
    with quiet():
        yield
