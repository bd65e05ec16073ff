"""Keras sequence model -> stateful streaming step model -> int8 TFLite (needs the `train` extra)."""
