"""One reader for every common format: 8/16/24/32-bit, float, mono/stereo, 8-48 kHz -> 16 kHz mono int16."""

import numpy as np
import pytest
import soundfile as sf

from edge.audio import SAMPLE_RATE, read_audio
from edge.errors import AudioFormatError, EdgeError

TONE_HZ = 440


def tone(rate, seconds=0.5, amplitude=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * TONE_HZ * t)


@pytest.mark.parametrize(
    "fmt,subtype",
    [("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "FLOAT"), ("WAV", "DOUBLE"), ("FLAC", "PCM_16"), ("FLAC", "PCM_24")],
)
@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_formats_convert_to_16k_mono_int16(tmp_path, fmt, subtype, rate, channels):
    x = tone(rate)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    path = tmp_path / f"t.{fmt.lower()}"
    sf.write(path, data, rate, format=fmt, subtype=subtype)
    out = read_audio(path)
    assert out.dtype == np.int16 and out.ndim == 1
    assert abs(out.size - SAMPLE_RATE // 2) <= 2
    # the tone survives at the right level (0.5 full scale -> RMS ~ 0.354)
    rms = np.sqrt(np.mean((out[800:-800].astype(np.float64) / 32768) ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.03)
    # and at the right pitch
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / out.size
    assert abs(peak_hz - TONE_HZ) < 4


def test_16k_int16_mono_is_read_bit_exact(tmp_path):
    x = (np.random.default_rng(0).standard_normal(8000) * 3000).astype(np.int16)
    sf.write(tmp_path / "a.wav", x, SAMPLE_RATE, subtype="PCM_16")
    assert np.array_equal(read_audio(tmp_path / "a.wav"), x)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(AudioFormatError, match="nope.wav: no such audio file"):
        read_audio(tmp_path / "nope.wav")


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioFormatError, match="bad.wav: not a readable audio file"):
        read_audio(bad)


def test_rate_out_of_range_is_rejected(tmp_path):
    sf.write(tmp_path / "hi.wav", tone(96000), 96000)
    with pytest.raises(AudioFormatError, match="96000 Hz"):
        read_audio(tmp_path / "hi.wav")


def test_empty_file_is_rejected(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0), SAMPLE_RATE)
    with pytest.raises(AudioFormatError, match="no audio"):
        read_audio(tmp_path / "empty.wav")


def test_errors_share_a_root_and_a_builtin():
    assert issubclass(AudioFormatError, EdgeError) and issubclass(AudioFormatError, ValueError)


def test_real_shared_recordings_read(tmp_path):
    from .paths import ACTIVATE

    for path in sorted((ACTIVATE / "positives").glob("*.wav"))[:3] + [ACTIVATE / "hard_negatives" / "activated.wav"]:
        audio = read_audio(path)
        assert audio.dtype == np.int16 and audio.size > SAMPLE_RATE // 4


def test_read_audio_max_seconds_decodes_only_the_start(tmp_path):
    from edge.audio import write_wav

    samples = (np.arange(3 * 16000) % 1000).astype(np.int16)
    write_wav(tmp_path / "a.wav", samples)
    part = read_audio(tmp_path / "a.wav", max_seconds=1.25)
    assert part.size == 20000 and np.array_equal(part, samples[:20000])


@pytest.mark.parametrize("rate, width, channels", [(44100, 4, 2), (8000, 1, 1), (48000, 2, 6), (16000, 2, 2)])
def test_stream_converter_matches_batch_conversion(rate, width, channels):
    """Any stream format, in odd-sized chunks (frames split across chunks), gives what
    ``convert`` gives for the whole array (the Wyoming service relies on it)."""
    from edge.audio import SAMPLE_WIDTHS, StreamConverter, convert

    rng = np.random.default_rng(width * channels)
    dtype = np.dtype(SAMPLE_WIDTHS[width])
    info = np.iinfo(dtype)
    frames = rng.integers(info.min // 4 + (info.max // 2 if width == 1 else 0), info.max // 4 + (info.max // 2 if width == 1 else 0),
                          size=(rate // 5, channels)).astype(dtype)
    data = frames.astype(dtype.newbyteorder("<")).tobytes()
    converter = StreamConverter(rate, width, channels)
    parts = [converter.process(data[i : i + 997]) for i in range(0, len(data), 997)]
    streamed = np.concatenate(parts + [converter.process(b"", last=True)])
    if width == 1:
        expected = convert((frames.astype(np.float64) - 128) / 128, rate)
    else:
        expected = convert(frames, rate)
    assert streamed.dtype == np.int16 and np.array_equal(streamed, expected)


@pytest.mark.parametrize("rate, width, channels, message", [
    (16000, 3, 1, "sample width 3"), (16000, 2, 0, "0 channels"), (4000, 2, 1, "outside 8000-48000"),
])
def test_stream_converter_rejects_formats_with_one_line(rate, width, channels, message):
    from edge.audio import StreamConverter

    with pytest.raises(AudioFormatError, match=message):
        StreamConverter(rate, width, channels)
