"""The Keras sequence model: Conv1D -> GRU x2 -> per-step sigmoid (the assignment's, on 40-ch 10 ms frames)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edge.features import DEFAULT_FRONTEND
from edge.geometry import KERNEL_FRAMES, STRIDE_FRAMES


@dataclass(frozen=True)
class ModelConfig:
    filters: int = 196
    kernel_frames: int = KERNEL_FRAMES
    stride_frames: int = STRIDE_FRAMES
    gru_units: int = 128
    dropout: float = 0.2
    channels: int = DEFAULT_FRONTEND.channels
    learning_rate: float = 1e-3

    def to_dict(self) -> dict:
        return asdict(self)


def build_model(config: ModelConfig = ModelConfig()):
    """Sequence model for training: (batch, frames, channels) float -> (batch, steps, 1)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(None, config.channels), name="features")
    x = layers.Conv1D(config.filters, config.kernel_frames, strides=config.stride_frames, padding="valid", name="conv")(inputs)
    x = layers.BatchNormalization(name="conv_bn")(x)
    x = layers.Activation("relu", name="conv_relu")(x)
    x = layers.Dropout(config.dropout, name="conv_drop")(x)
    x = layers.GRU(config.gru_units, return_sequences=True, reset_after=True, name="gru1")(x)
    x = layers.Dropout(config.dropout, name="gru1_drop")(x)
    x = layers.BatchNormalization(name="gru1_bn")(x)
    x = layers.GRU(config.gru_units, return_sequences=True, reset_after=True, name="gru2")(x)
    x = layers.Dropout(config.dropout, name="gru2_drop")(x)
    x = layers.BatchNormalization(name="gru2_bn")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="prob")(x)
    model = keras.Model(inputs, outputs, name="trigger_edge")
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="binary_crossentropy",
    )
    return model
