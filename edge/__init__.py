"""trigger-edge: on-device wake-word runtime (no TensorFlow here)."""

__version__ = "0.1.0"
