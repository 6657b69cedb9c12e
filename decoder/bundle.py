"""The model bundle: one validated, self-describing folder that creates engines and feature extractors.

Layout::

    BUNDLE_DIR/
        bundle.json     schema version, the contract, sha256 of model.onnx and weights.npz
        model.onnx      one decoder step with explicit recurrent state (inputs features, h[, c]; outputs
                        positions, class_logits, h_out[, c_out]); its metadata seals the contract (bundle_check)
        weights.npz     the same weights as plain arrays, for the numpy engine
        engine-*.plan   TensorRT engines built on the device (optional, keyed by GPU, TensorRT and model hash)

The **contract** is what the model expects of its input and what it outputs: sample rate, channel count and names,
signal kind, feature configuration and its frame timing at that rate (``frame_timing``: hop and window in samples and
their exact milliseconds; bundles exported before it have none and still load), normalisation statistics, the running
feature adaptation and its prior (:mod:`decoder.adaptation`; null for models trained without it), class names, a
gesture model's grips (:mod:`decoder.grips`), recurrent cell and state shapes, model version and training metrics.
:meth:`Bundle.check_source` refuses a signal source that does not match it.
"""

import hashlib
import json
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import bundle_check
from .adaptation import FeatureAdapter
from .errors import InvalidValueError
from .feature_config import FeatureConfig
from .features import FeatureExtractor
from .grips import GripTable, grip_table_from_contract
from .postprocess import PostConfig, check_smoothing_ms

SCHEMA_VERSION = 4
"""The newest bundle schema this code reads; a newer one is refused with "update neurohand on the device"."""
SEALED_SCHEMA = 4
"""The oldest schema this code reads, and the one every bundle is written with. 4 seals the contract, the schema and
the sha256 of weights.npz in model.onnx's metadata (:mod:`decoder.bundle_check`), so an edit of any one file,
bundle.json included, is caught; bundles of schema 1-3 (1 plain, 2 with the contract's ``adaptation``, 3 with a
pooled class output) are refused with "re-export"."""
BUNDLE_FILES = ("model.onnx", "weights.npz")


class BundleError(InvalidValueError):
    """A bundle is missing, corrupted, from a newer schema, or does not fit the signal it is asked to decode."""


def sha256_of(path: str) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Bundle:
    """A loaded, validated bundle folder.

    Parameters
    ----------
    path : str
        The folder.

    Raises
    ------
    BundleError
        Missing ``bundle.json`` or files, a hash mismatch (corruption), or a newer schema.
    """

    def __init__(self, path: str) -> None:
        self.path = str(path)
        meta_path = os.path.join(self.path, "bundle.json")
        if not os.path.isfile(meta_path):
            raise BundleError("{!r} is not a model bundle: bundle.json is missing (make one with "
                              "'neurohand export MODEL_DIR --out BUNDLE_DIR')".format(self.path))
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise BundleError("{!r}: bundle.json is not valid JSON ({})".format(self.path, e)) from e
        if not isinstance(meta, dict):
            raise BundleError("{!r}: bundle.json must hold an object (schema_version, contract, files), got {}".format(
                self.path, type(meta).__name__))
        version = meta.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise BundleError("{!r}: bundle.json has no integer 'schema_version'".format(self.path))
        if version > SCHEMA_VERSION:
            raise BundleError("{!r} uses bundle schema {}, newer than this runtime reads ({}); update neurohand on "
                              "the device".format(self.path, version, SCHEMA_VERSION))
        if version < SEALED_SCHEMA:
            raise BundleError("{!r} uses bundle schema {}, which does not seal bundle.json and weights.npz to "
                              "model.onnx; re-export it with this version (neurohand export MODEL_DIR --out "
                              "BUNDLE_DIR; a patient's store keeps MODEL_DIR as versions/vNNN/model)".format(
                                  self.path, version))
        for key, kind in (("contract", dict), ("files", dict)):
            if not isinstance(meta.get(key), kind):
                raise BundleError("{!r}: bundle.json is missing {!r} (an object)".format(self.path, key))
        files = meta["files"]
        if sorted(files) != sorted(BUNDLE_FILES) or not all(isinstance(v, str) for v in files.values()):
            raise BundleError("{!r}: bundle.json's 'files' must hash exactly {}, got {}".format(
                self.path, ", ".join(BUNDLE_FILES), sorted(files)))
        for name, expected in files.items():
            fp = os.path.join(self.path, name)
            if not os.path.isfile(fp):
                raise BundleError("{!r}: file {!r} is missing".format(self.path, name))
            got = sha256_of(fp)
            if got != expected:
                raise BundleError("{!r}: {!r} is corrupted (sha256 {}..., bundle.json says {}...); re-export or "
                                  "copy the bundle again".format(self.path, name, got[:12], expected[:12]))
        self._check_integrity(meta)
        self.meta = meta
        self.contract = meta["contract"]  # type: Dict[str, Any]
        # built once, on loading: a malformed adaptation is refused here, not when the runtime starts
        self._adapter = self._load_adapter()

    def _check_integrity(self, meta: Dict[str, Any]) -> None:
        """Check the seal in model.onnx, then the contract against the graph, the weights and the feature extractor."""
        where = repr(self.path)
        try:
            onnx_meta, inputs, outputs = bundle_check.read_onnx(os.path.join(self.path, "model.onnx"))
        except ValueError as e:
            raise BundleError("{}: model.onnx is {}; re-export the bundle".format(where, e)) from None
        contract = meta["contract"]
        try:
            bundle_check.check_seal(where, meta, onnx_meta)
            bundle_check.check_graph(contract, inputs, outputs)
            with np.load(os.path.join(self.path, "weights.npz"), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            bundle_check.check_weights(contract, {k: v.shape for k, v in arrays.items()},
                                       {k: bool(np.all(np.isfinite(v))) for k, v in arrays.items()
                                        if v.dtype.kind == "f"})
            self.contract = contract
            extractor = self.feature_extractor()
            bundle_check.check_features(contract, extractor.n_features)
            bundle_check.check_frame_timing(contract, extractor.hop_samples, extractor.window_samples)
            self._hop_samples = extractor.hop_samples
            self.post_config()  # a post-processing choice the device cannot apply is refused on loading
            self._grips = self._load_grips()
        except BundleError:
            raise
        except (InvalidValueError, KeyError, TypeError, ValueError) as e:
            raise BundleError("{}: the bundle is inconsistent, refused before decoding: {}".format(
                where, str(e) if isinstance(e, InvalidValueError) else "{}: {}".format(type(e).__name__, e))) from None

    # ------------------------------------------------------------------ contract
    @property
    def hop_samples(self) -> int:
        """Samples between frames at :attr:`fs_hz`: the frame timing every reader of this bundle chunks by."""
        return self._hop_samples

    @property
    def fs_hz(self) -> float:
        """Sample rate the model expects."""
        return float(self.contract["fs_hz"])

    @property
    def n_channels(self) -> int:
        """Channel count the model expects."""
        return int(self.contract["n_channels"])

    @property
    def class_names(self) -> List[str]:
        """Class names (0 = rest)."""
        return list(self.contract["class_names"])

    @property
    def feature_config(self) -> FeatureConfig:
        """Feature configuration the model was trained with."""
        return FeatureConfig.from_dict(self.contract["feature_config"])

    @property
    def model_hash(self) -> str:
        """sha256 of ``model.onnx``."""
        return str(self.meta["files"]["model.onnx"])

    def post_config(self) -> PostConfig:
        """Return the post-processing the model was exported for: the contract's ``post`` over the defaults.

        Only the smoothing is the model's choice (``post.smoothing_ms``, 0 to 1000 ms); the velocity limit, finger
        ranges, dead-band and rest gate are the runtime's. Bundles without ``post`` get :class:`PostConfig`'s
        defaults.
        """
        post = self.contract.get("post", {})
        if not isinstance(post, dict) or set(post) - {"smoothing_ms"}:
            raise InvalidValueError("the contract's post must be an object with at most 'smoothing_ms', got "
                                    "{!r}".format(post))
        if "smoothing_ms" not in post:
            return PostConfig()
        return PostConfig(smoothing_ms=check_smoothing_ms("post.smoothing_ms", post["smoothing_ms"]))

    def grip_table(self) -> Optional[GripTable]:
        """Return what each class does to the hand (:mod:`decoder.grips`), for a gesture model exported with grips.

        None for a model that decodes finger positions, and for a gesture model exported before grips (it holds the
        safe posture; re-export it to move the hand).
        """
        return self._grips

    def _load_grips(self) -> Optional[GripTable]:
        if "grips" not in self.contract:
            return None
        if self.contract["model"].get("positions", True):
            raise InvalidValueError("the contract has 'grips' but the model decodes finger positions; grips are for "
                                    "gesture (class-only) models")
        return grip_table_from_contract(self.contract["grips"], self.class_names)

    def file(self, name: str) -> str:
        """Path of a file in the bundle."""
        return os.path.join(self.path, name)

    def check_source(self, *, fs_hz: float, n_channels: int, channel_names: Optional[Sequence[str]] = None) -> None:
        """Refuse a signal source whose rate or channel count differs from the contract.

        Raises
        ------
        BundleError
            Naming what the model expects and what the source delivers.
        """
        if abs(float(fs_hz) - self.fs_hz) > 1e-6 * self.fs_hz:
            raise BundleError("The source delivers {} Hz but the model in {!r} expects {} Hz".format(
                fs_hz, self.path, self.fs_hz))
        if int(n_channels) != self.n_channels:
            raise BundleError("The source delivers {} channels but the model in {!r} expects {} ({})".format(
                n_channels, self.path, self.n_channels, ", ".join(self.contract.get("channel_names", []))))
        expected = self.contract.get("channel_names")
        if channel_names is not None and expected and list(channel_names) != list(expected):
            raise BundleError("The source's channels {} differ from the model's {}".format(
                list(channel_names), list(expected)))

    def feature_extractor(self) -> FeatureExtractor:
        """Create a feature extractor with the bundle's configuration, rate and channel count."""
        sos = self.contract.get("filter_sos")  # designed at export: the device never needs scipy.signal
        return FeatureExtractor(self.feature_config, fs_hz=self.fs_hz, n_channels=self.n_channels,
                                sos=None if sos is None else np.asarray(sos, dtype=float).reshape(-1, 6))

    def feature_adapter(self) -> Optional[FeatureAdapter]:
        """Return the running feature adaptation the model was trained behind, or None when it has none.

        The adapter holds only the prior; each stream keeps its own state (``new_state()``), so callers share it.
        """
        return self._adapter

    def _load_adapter(self) -> Optional[FeatureAdapter]:
        """Build the contract's adaptation.

        Raises
        ------
        BundleError
            The contract's adaptation is malformed or does not fit the model's feature count.
        """
        d = self.contract.get("adaptation")
        if not d:
            return None
        try:
            adapter = FeatureAdapter.from_dict(d, hop_ms=self.feature_config.hop_ms)
        except (KeyError, TypeError, ValueError) as e:
            raise BundleError("{!r}: the contract's 'adaptation' is invalid ({})".format(self.path, e)) from e
        n = int(self.contract["model"]["n_features"])
        if adapter.n_features != n:
            raise BundleError("{!r}: the adaptation's prior has {} features but the model reads {}".format(
                self.path, adapter.n_features, n))
        return adapter

    def weights(self) -> Dict[str, np.ndarray]:
        """Load the plain-array weights (``allow_pickle=False``)."""
        with np.load(self.file("weights.npz"), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def schema_version_for(contract: Dict[str, Any]) -> int:
    """Return the schema a bundle for ``contract`` is written with: :data:`SEALED_SCHEMA`, every bundle is sealed."""
    return SEALED_SCHEMA


def write_bundle_json(path: str, contract: Dict[str, Any], files: Sequence[str]) -> None:
    """Write ``bundle.json`` with the sha256 of each named file in the folder ``path``."""
    meta = {
        "schema_version": schema_version_for(contract),
        "contract": contract,
        "files": {name: sha256_of(os.path.join(path, name)) for name in files},
    }
    tmp = os.path.join(path, "bundle.json.partial")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, os.path.join(path, "bundle.json"))
