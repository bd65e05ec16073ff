"""trigger-edge training side: data synthesis, TTS, model, training and evaluation (needs TensorFlow)."""
