"""The decoder and its streams: one object wires filters -> features -> adaptation -> engine -> post-processing.

The decoder holds what a model is (weights, preprocessing contract, post-processing settings); a stream holds what
one session has seen (filter and feature state, the adaptation's running statistics, the recurrent state, the last
command). In the manner of sherpa-onnx::

    decoder = StreamDecoder(Bundle(path), engine="auto")
    stream = decoder.new_stream()
    out = decoder.process(stream, chunk)   # chunk: (n_samples, n_channels) raw samples at bundle.fs_hz
    out.positions, out.class_probabilities, out.commands
    decoder.reset(stream)                  # fresh decoding state; the adaptation's statistics are kept

The runtime, the demo, the benchmarks and the calibration flow all decode through it, so live decoding equals
offline decoding by construction: a recording decoded in one call gives the frames of the same recording decoded
chunk by chunk.
"""

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import numpy as np

from .adaptation import AdaptationState
from .engines import create_engine
from .errors import NeurohandError
from .features import FeatureState
from .postprocess import SAFE_POSTURE, PostConfig, PostProcessor, PostState, rest_probability


class DecodeFault(NeurohandError):
    """Decoding cannot go on from this stream's state (non-finite features or outputs); reset the stream.

    Attributes
    ----------
    kind : {'signal', 'engine'}
        ``'signal'``: the samples drove the features out of any physical range; ``'engine'``: the model produced
        non-finite outputs.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class DecodedFrames(NamedTuple):
    """What one :meth:`StreamDecoder.process` call decoded: one row per completed frame.

    Attributes
    ----------
    positions : np.ndarray, shape (n_frames, 5)
        Decoded finger positions, 0 open .. 1 closed (thumb, index, middle, ring, little).
    class_logits : np.ndarray, shape (n_frames, n_classes)
        Unnormalised class scores (0 = rest).
    class_probabilities : np.ndarray, shape (n_frames, n_classes)
        Softmax of the logits.
    commands : np.ndarray, shape (n_frames, 5)
        Post-processed commands (rest gate, smoothing, dead-band, velocity limit, finger ranges). For a model whose
        position head was never trained (class-only data) they ramp to and hold ``hold_posture``, whatever the
        untrained head outputs.
    frame_end_samples : np.ndarray, shape (n_frames,), int64
        Index of each frame's last sample, counted from the stream's first sample since its last reset.
    grip_classes : np.ndarray, shape (n_frames,), int64
        A gesture model with grips: the class whose grip each command moves to (-1: none chose one yet, the hold
        posture); -1 for every other model.
    """

    positions: np.ndarray
    class_logits: np.ndarray
    class_probabilities: np.ndarray
    commands: np.ndarray
    frame_end_samples: np.ndarray
    grip_classes: np.ndarray


@dataclass
class Stream:
    """One session's decoding state; create with :meth:`StreamDecoder.new_stream`, treat as opaque."""

    features: FeatureState
    adaptation: Optional[AdaptationState]
    engine: Any
    post: PostState
    grip_class: int = -1  # a gesture model's current grip (-1: none yet)

    @property
    def n_samples(self) -> int:
        """Samples decoded since the stream was made or last reset (``frame_end_samples`` count from the same)."""
        return self.features.n_samples


class StreamDecoder:
    """A bundle's model with its preprocessing and post-processing, shared by any number of streams.

    Parameters
    ----------
    bundle : Bundle
        The loaded bundle.
    engine : {'auto', 'tensorrt', 'onnxruntime', 'numpy'}
        Inference engine (see :func:`neurohand.decoder.engines.create_engine`).
    post : PostConfig, optional
        Post-processing of the commands (default: the bundle's, :meth:`Bundle.post_config`).
    hold_posture : sequence of 5 float, optional
        Where a class-only model (contract ``model.positions`` false) holds the hand: its position head is
        untrained, so its positions never reach the hand (default :data:`~neurohand.decoder.postprocess.SAFE_POSTURE`;
        the runtime passes its sink's safe posture). With grips (:meth:`Bundle.grip_table`) it holds there until a
        class confidently chooses a grip, then moves to each grip chosen.
    **engine_options
        Passed to the engine (``threads`` for onnxruntime, ``fp16`` for TensorRT).
    """

    def __init__(self, bundle: Any, *, engine: str = "auto", post: Optional[PostConfig] = None,
                 hold_posture: Optional[Any] = None, **engine_options: Any) -> None:
        self.bundle = bundle
        self.drives_fingers = bool(bundle.contract["model"].get("positions", True))
        self.grips = None if self.drives_fingers else bundle.grip_table()
        self.hold_posture = np.asarray(SAFE_POSTURE if hold_posture is None else hold_posture, float)
        self.engine = create_engine(bundle, engine, **engine_options)
        self.extractor = bundle.feature_extractor()
        self.adapter = bundle.feature_adapter()
        self.post = PostProcessor(post or bundle.post_config(), hop_ms=bundle.feature_config.hop_ms)
        self.n_classes = len(bundle.class_names)

    @property
    def hop_samples(self) -> int:
        """Samples per frame hop: the natural chunk size of a live source."""
        return self.extractor.hop_samples

    def new_stream(self) -> Stream:
        """Return a stream that has seen no samples, with the adaptation at its training prior."""
        return Stream(features=self.extractor.new_state(),
                      adaptation=None if self.adapter is None else self.adapter.new_state(),
                      engine=self.engine.new_state(), post=self.post.new_state())

    def reset(self, stream: Stream, command=None) -> None:
        """Restart decoding (filters, features, recurrent state, smoothing) on ``stream``, in place.

        The adaptation's running statistics are kept: they describe the electrodes, not the interrupted signal.
        The post-processing keeps its last command (or takes ``command``, e.g. the safe posture the hand was sent):
        the first command after a reset is velocity-limited against it, never a jump.
        """
        stream.features = self.extractor.new_state()
        stream.engine = self.engine.new_state()
        stream.grip_class = -1  # a grip is chosen again, from fresh decoding
        last = stream.post.command if command is None else np.array(command, float)
        stream.post = PostState(command=None if last is None else np.array(last, float))

    def process(self, stream: Stream, chunk: np.ndarray) -> DecodedFrames:
        """Decode a chunk of raw samples on ``stream`` (updated in place) and return the frames it completes.

        Parameters
        ----------
        stream : Stream
        chunk : array_like, shape (n_samples, n_channels)
            Raw samples at the bundle's rate, any length (also 0). NaN or inf raise ``InvalidValueError``.

        Returns
        -------
        DecodedFrames

        Raises
        ------
        DecodeFault
            Non-finite features or outputs; the stream's decoding state is then unusable: :meth:`reset` it.
        """
        first = stream.features.n_frames
        frames, stream.features = self.extractor.process(stream.features, chunk)
        n = len(frames)
        if not np.all(np.isfinite(frames)):  # finite samples far out of range overflow the features
            raise DecodeFault("signal", "non-finite features: samples out of any physical range")
        if self.adapter is not None and n:
            frames, stream.adaptation = self.adapter.process(stream.adaptation, frames)
        positions = np.empty((n, 5))
        logits = np.empty((n, self.n_classes))
        probabilities = np.empty((n, self.n_classes))
        commands = np.empty((n, 5))
        grip_classes = np.full(n, -1, np.int64)
        for i, f in enumerate(frames):
            out, stream.engine = self.engine.step(stream.engine, f)
            if not (np.all(np.isfinite(out.positions)) and np.all(np.isfinite(out.class_logits))):
                raise DecodeFault("engine", "the decoder produced non-finite outputs")
            positions[i], logits[i] = out.positions, out.class_logits
            probabilities[i] = out.class_probabilities()
            if self.drives_fingers:
                target = out.positions
            elif self.grips is None:
                target = self.hold_posture
            else:
                stream.grip_class = self.grips.choose(probabilities[i], stream.grip_class)
                grip_classes[i] = stream.grip_class
                target = self.hold_posture if stream.grip_class < 0 else self.grips.postures[stream.grip_class]
            commands[i], stream.post = self.post.step(stream.post, target, float(rest_probability(probabilities[i])))
        return DecodedFrames(positions, logits, probabilities, commands,
                             self.extractor.frame_end_samples(first, n), grip_classes)
