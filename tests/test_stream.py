"""The decoder and its streams: the whole chain in one object, live equal to offline by construction."""

import numpy as np
import pytest

from neurohand.decoder.engines import create_engine
from neurohand.decoder.errors import InvalidValueError, NeurohandError
from neurohand.decoder.postprocess import PostConfig, PostProcessor
from neurohand.decoder.stream import DecodeFault, StreamDecoder


def _chunked(decoder, stream, signals, sizes):
    outs, i = [], 0
    for n in sizes:
        outs.append(decoder.process(stream, signals[i:i + n]))
        i += n
    assert i >= len(signals)
    return tuple(np.concatenate([getattr(o, k) for o in outs]) for k in outs[0]._fields)


def test_any_chunking_decodes_the_same_frames_and_commands(rec, bundle):
    decoder = StreamDecoder(bundle, engine="numpy")
    whole = decoder.process(decoder.new_stream(), rec.signals)
    sizes = np.random.default_rng(0).integers(0, 97, size=len(rec.signals))  # zero-length chunks too
    sizes = sizes[:np.searchsorted(np.cumsum(sizes), len(rec.signals)) + 1]
    chunked = _chunked(decoder, decoder.new_stream(), rec.signals, sizes)
    assert len(whole.positions) == len(bundle.feature_extractor().transform(rec.signals)) > 100
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_the_stream_decodes_what_the_training_side_evaluates(rec, bundle):
    """Bundle + decoder applies the adaptation itself: the frames the model sees are the offline path's."""
    from neurohand.training.data import adapt_frames, build_frames

    offline = adapt_frames(build_frames([rec], bundle.feature_config), bundle.feature_adapter()).features
    engine = create_engine(bundle, "numpy")
    state, expected = engine.new_state(), []
    for f in offline:
        out, state = engine.step(state, f)
        expected.append(out.positions)
    decoder = StreamDecoder(bundle, engine="numpy")
    got = decoder.process(decoder.new_stream(), rec.signals)
    np.testing.assert_allclose(got.positions, np.array(expected), atol=1e-5)
    # and the commands are the post-processor's, frame by frame, fed P(rest)
    post = PostProcessor(bundle.post_config(), hop_ms=bundle.feature_config.hop_ms)
    ps, cmds = post.new_state(), []
    for pos, prob in zip(got.positions, got.class_probabilities):
        c, ps = post.step(ps, pos, float(prob[0]))
        cmds.append(c)
    np.testing.assert_array_equal(got.commands, np.array(cmds))
    np.testing.assert_allclose(got.class_probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_onnxruntime_and_numpy_streams_agree(rec, bundle):
    a = StreamDecoder(bundle, engine="numpy")
    b = StreamDecoder(bundle, engine="onnxruntime")
    pa = a.process(a.new_stream(), rec.signals[:8000])
    pb = b.process(b.new_stream(), rec.signals[:8000])
    np.testing.assert_allclose(pa.positions, pb.positions, atol=1e-4)
    np.testing.assert_allclose(pa.class_logits, pb.class_logits, atol=1e-3)


def test_frame_end_samples_count_from_the_streams_start(rec, bundle):
    decoder = StreamDecoder(bundle, engine="numpy")
    stream = decoder.new_stream()
    hop, ex = decoder.hop_samples, bundle.feature_extractor()
    first = decoder.process(stream, rec.signals[:ex.window_samples - 1])
    assert len(first.positions) == 0 and first.frame_end_samples.shape == (0,)
    out = decoder.process(stream, rec.signals[ex.window_samples - 1:ex.window_samples + 3 * hop])
    np.testing.assert_array_equal(out.frame_end_samples, ex.window_samples - 1 + hop * np.arange(4))


def test_reset_restarts_decoding_but_keeps_the_adaptation(rec, bundle):
    decoder = StreamDecoder(bundle, engine="numpy")
    stream = decoder.new_stream()
    decoder.process(stream, rec.signals[:12000])
    seen = stream.adaptation.n_frames
    assert seen > 0
    last = stream.post.command.copy()
    decoder.reset(stream)
    assert stream.adaptation.n_frames == seen  # the running statistics describe the electrodes: kept
    assert stream.features.n_frames == 0 and stream.post.smoothed is None
    # the last command is kept: the first command after a reset is velocity-limited against it, never a jump
    np.testing.assert_array_equal(stream.post.command, last)
    decoder.reset(stream, command=[0.1] * 5)  # or the safe posture the runtime sent
    np.testing.assert_array_equal(stream.post.command, [0.1] * 5)
    assert all(np.all(v == 0) for v in stream.engine.values())
    again = decoder.process(stream, rec.signals[12000:])
    fresh_stream = decoder.new_stream()
    fresh = decoder.process(fresh_stream, rec.signals[12000:])
    assert len(again.positions) == len(fresh.positions)
    assert np.max(np.abs(again.positions - fresh.positions)) > 1e-4  # the carried statistics do change frames


def test_samples_out_of_any_physical_range_are_a_signal_fault(rec, bundle):
    decoder = StreamDecoder(bundle, engine="numpy")
    stream = decoder.new_stream()
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(DecodeFault, match="non-finite features") as e:
        decoder.process(stream, rec.signals[:4000] * 1e25)
    assert e.value.kind == "signal" and isinstance(e.value, NeurohandError)
    decoder.reset(stream)
    assert len(decoder.process(stream, rec.signals[:4000]).positions) > 0  # decoding goes on after a reset


def test_a_chunk_with_the_wrong_channel_count_is_refused(rec, bundle):
    decoder = StreamDecoder(bundle, engine="numpy")
    with pytest.raises(InvalidValueError, match="'chunk' must have 4 channels"):
        decoder.process(decoder.new_stream(), np.zeros((40, 3)))


def test_a_model_without_classes_drives_the_hand(tmp_path, rec):
    """Trained on positions alone (one class, 'rest'): its P(rest) is 1 by construction and must gate nothing."""
    import dataclasses

    from neurohand.decoder.bundle import Bundle
    from tests.test_export_engines import small_bundle

    positions_only = dataclasses.replace(rec, labels=None, class_names=("rest",))
    bundle = Bundle(small_bundle(str(tmp_path), positions_only))
    assert list(bundle.class_names) == ["rest"]
    decoder = StreamDecoder(bundle, engine="numpy", post=PostConfig(deadband=0.0))
    got = decoder.process(decoder.new_stream(), rec.signals)
    assert np.all(got.class_probabilities == 1.0)
    post = PostProcessor(PostConfig(deadband=0.0), hop_ms=bundle.feature_config.hop_ms)
    ps, expected = post.new_state(), []
    for pos in got.positions:
        c, ps = post.step(ps, pos, 0.0)  # nothing gated
        expected.append(c)
    np.testing.assert_allclose(got.commands, np.array(expected), atol=1e-12)
    assert np.all(np.ptp(got.commands, axis=0) > 1e-3)  # the hand follows the decoded positions
