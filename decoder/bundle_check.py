"""Whole-bundle integrity and the contract checked against the graph and the weights, on every load.

How an edit is caught (schema 4, :mod:`decoder.bundle`):

* ``bundle.json`` holds the sha256 of ``model.onnx`` and ``weights.npz``: an edit of either file alone is caught.
* ``model.onnx``'s metadata *seals* the contract (``neurohand_contract``, the whole contract as JSON), the schema
  (``neurohand_schema_version``) and the sha256 of ``weights.npz`` (``neurohand_weights_sha256``). Since
  ``model.onnx`` is hashed in ``bundle.json``, an edit of ``bundle.json`` alone (a filter coefficient, a class name,
  the hidden size) no longer matches the sealed contract, and a ``weights.npz`` swapped together with its hash in
  ``bundle.json`` no longer matches the sealed weights hash.
* A ``model.onnx`` replaced together with its hash in ``bundle.json`` has to carry the same seal; one from elsewhere
  (a random or another patient's model) does not.
* Then the contract is checked against the graph's own inputs and outputs (feature count, state shapes, class count)
  and against the shapes of the arrays in ``weights.npz``, the feature count against the channel count and the
  feature configuration, and the frame timing the device computes (hop and window in samples at the contract's rate)
  against the contract's ``frame_timing``, when it has one: an inconsistent bundle cannot start.

What it cannot catch: a deliberate rewrite of several files kept consistent with each other (a graph edited by hand
that keeps the seal, re-hashed in ``bundle.json``): hashes carry no secret. Only a signature (a key the clinic
holds) would; until then, bundles must come from a trusted export and travel on trusted media.

No onnx package is needed: the few fields read here are parsed from the protobuf directly (the device has none).
"""

import json
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .errors import InvalidValueError

CONTRACT_KEY = "neurohand_contract"
SCHEMA_KEY = "neurohand_schema_version"
WEIGHTS_KEY = "neurohand_weights_sha256"


class _Malformed(Exception):
    pass


def canonical(obj: Any) -> str:
    """Return the one JSON text of ``obj`` that two equal contracts share (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------- protobuf reading
def _varint(buf: bytes, i: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise _Malformed("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[Tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message; LEN values as bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise _Malformed("truncated field {}".format(num))
            val, i = buf[i:i + n], i + n
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise _Malformed("wire type {}".format(wt))
        if i > len(buf):
            raise _Malformed("truncated field {}".format(num))
        yield num, wt, val


def _all(buf: bytes, num: int) -> List[Any]:
    return [v for n, _, v in _fields(buf) if n == num]


def _one(buf: bytes, num: int, default: Any = b"") -> Any:
    vals = _all(buf, num)
    return vals[-1] if vals else default


def _value_info(vi: bytes) -> Tuple[str, Optional[List[Any]]]:
    """Name and shape (ints, or strings for symbolic dims) of an ONNX ValueInfoProto."""
    name = _one(vi, 1).decode("utf-8")
    tensor = _one(_one(vi, 2), 1)  # TypeProto.tensor_type
    if not tensor:
        return name, None
    dims = []
    for d in _all(_one(tensor, 2), 1):  # TensorShapeProto.dim
        value = _all(d, 1)
        dims.append(value[-1] if value else _one(d, 2).decode("utf-8") or "?")
    return name, dims


def read_onnx(path: str) -> Tuple[Dict[str, str], Dict[str, List[Any]], Dict[str, List[Any]]]:
    """Metadata, input shapes and output shapes of an ONNX model file.

    Raises
    ------
    ValueError
        The file is not a readable ONNX model.
    """
    with open(path, "rb") as f:
        buf = f.read()
    try:
        meta = {}
        for entry in _all(buf, 14):  # ModelProto.metadata_props
            meta[_one(entry, 1).decode("utf-8")] = _one(entry, 2).decode("utf-8")
        graph = _one(buf, 7)  # ModelProto.graph
        if not graph:
            raise _Malformed("no graph")
        inputs = dict(_value_info(v) for v in _all(graph, 11))
        outputs = dict(_value_info(v) for v in _all(graph, 12))
    except (_Malformed, UnicodeDecodeError, IndexError) as e:
        raise ValueError("not an ONNX model ({})".format(e)) from None
    return meta, inputs, outputs


# ---------------------------------------------------------------------------------------------- the checks
def check_seal(where: str, meta: Dict[str, Any], onnx_meta: Dict[str, str]) -> None:
    """Refuse a ``bundle.json`` whose contract, schema or weights hash differs from the seal in ``model.onnx``."""
    redo = "re-export the bundle from its model folder (neurohand export MODEL_DIR --out BUNDLE_DIR)"
    missing = [k for k in (CONTRACT_KEY, SCHEMA_KEY, WEIGHTS_KEY) if k not in onnx_meta]
    if missing:
        raise InvalidValueError("{}: model.onnx carries no {} (it is not this bundle's graph, or was exported before "
                                "bundle schema 4); {}".format(where, ", ".join(missing), redo))
    try:
        sealed = json.loads(onnx_meta[CONTRACT_KEY])
    except ValueError as e:
        raise InvalidValueError("{}: model.onnx's sealed contract is not JSON ({}); {}".format(where, e, redo)) from e
    if canonical(sealed) != canonical(meta["contract"]):
        diff = sorted(k for k in set(sealed) | set(meta["contract"]) if canonical(sealed.get(k)) != canonical(
            meta["contract"].get(k))) if isinstance(sealed, dict) else ["(all)"]
        raise InvalidValueError("{}: bundle.json's contract differs from the one sealed in model.onnx (in {}): "
                                "bundle.json was edited; {}".format(where, ", ".join(diff), redo))
    if onnx_meta[SCHEMA_KEY] != str(meta["schema_version"]):
        raise InvalidValueError("{}: bundle.json says schema {} but model.onnx was sealed with {}; {}".format(
            where, meta["schema_version"], onnx_meta[SCHEMA_KEY], redo))
    if onnx_meta[WEIGHTS_KEY] != meta["files"]["weights.npz"]:
        raise InvalidValueError("{}: weights.npz (sha256 {}...) is not the one sealed in model.onnx ({}...); {}".format(
            where, meta["files"]["weights.npz"][:12], onnx_meta[WEIGHTS_KEY][:12], redo))


def _int(model: Dict[str, Any], key: str, minimum: int) -> int:
    v = model.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise InvalidValueError("the contract's model.{} must be an integer >= {}, got {!r}".format(key, minimum, v))
    return v


def expected_shapes(contract: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    """Return the graph's tensor shapes the contract implies (inputs and outputs).

    Raises
    ------
    InvalidValueError
        The contract's model section is malformed or inconsistent with its class names.
    """
    m = contract.get("model")
    if not isinstance(m, dict):
        raise InvalidValueError("the contract has no 'model' section")
    if m.get("cell") not in ("gru", "lstm"):
        raise InvalidValueError("the contract's model.cell must be 'gru' or 'lstm', got {!r}".format(m.get("cell")))
    L, H, F, C = _int(m, "layers", 1), _int(m, "hidden", 1), _int(m, "n_features", 1), _int(m, "n_classes", 1)
    names = contract.get("class_names")
    if not isinstance(names, list) or len(names) != C:
        raise InvalidValueError("the contract's model has {} classes but class_names is {!r}".format(C, names))
    if m.get("state_shape", [L, 1, H]) != [L, 1, H]:
        raise InvalidValueError("the contract's model.state_shape {} is not [layers, 1, hidden] = {}".format(
            m.get("state_shape"), [L, 1, H]))
    shapes = {"features": (1, F), "h": (L, 1, H), "positions": (1, 5), "class_logits": (1, C), "h_out": (L, 1, H)}
    if m["cell"] == "lstm":
        shapes.update(c=(L, 1, H), c_out=(L, 1, H))
    return shapes


def check_graph(contract: Dict[str, Any], inputs: Dict[str, List[Any]], outputs: Dict[str, List[Any]]) -> None:
    """Refuse a contract that does not describe the graph's inputs and outputs."""
    shapes = expected_shapes(contract)
    for kind, have in (("input", inputs), ("output", outputs)):
        names = [n for n in shapes if (n in ("features", "h", "c")) == (kind == "input")]
        if sorted(have) != sorted(names):
            raise InvalidValueError("the graph's {}s are {} but the contract's {} model needs {}".format(
                kind, sorted(have), contract["model"]["cell"].upper(), sorted(names)))
        for n in names:
            if have[n] is not None and tuple(have[n]) != shapes[n]:
                raise InvalidValueError("the graph's {} {!r} has shape {} but the contract implies {}".format(
                    kind, n, tuple(have[n]), shapes[n]))


def check_weights(contract: Dict[str, Any], shapes: Dict[str, Tuple[int, ...]],
                  finite: Dict[str, bool]) -> None:
    """Refuse weights whose shapes differ from the contract's model, or that are not finite."""
    m = contract["model"]
    L, H, F, C = m["layers"], m["hidden"], m["n_features"], m["n_classes"]
    gates = 3 if m["cell"] == "gru" else 4
    P = m.get("projection") or 0
    want = {"feature_mean": (F,), "feature_std": (F,), "position_weight": (5, H), "position_bias": (5,),
            "class_weight": (C, H), "class_bias": (C,)}
    if P:
        want.update(proj_weight=(P, F), proj_bias=(P,))
    for k in range(L):
        want["rnn_weight_ih_l{}".format(k)] = (gates * H, (P or F) if k == 0 else H)
        want["rnn_weight_hh_l{}".format(k)] = (gates * H, H)
        want["rnn_bias_ih_l{}".format(k)] = (gates * H,)
        want["rnn_bias_hh_l{}".format(k)] = (gates * H,)
    for name, shape in sorted(want.items()):
        if name not in shapes:
            raise InvalidValueError("weights.npz lacks array {!r} that the contract's model needs".format(name))
        if tuple(shapes[name]) != shape:
            raise InvalidValueError("weights.npz's {!r} has shape {} but the contract's model implies {}".format(
                name, tuple(shapes[name]), shape))
    extra = sorted(n for n in shapes if n.startswith("rnn_") and n not in want)
    if extra:
        raise InvalidValueError("weights.npz has arrays the contract's {}-layer model does not: {}".format(L, extra))
    bad = sorted(n for n, ok in finite.items() if not ok)
    if bad:
        raise InvalidValueError("weights.npz holds non-finite values (NaN or infinity) in {}: this model cannot "
                                "decode".format(", ".join(bad)))


def check_features(contract: Dict[str, Any], n_extracted: int) -> None:
    """Refuse a contract whose channel count and feature configuration give another frame length than the model."""
    names = contract.get("channel_names")
    n_ch = contract.get("n_channels")
    if isinstance(names, list) and names and len(names) != n_ch:
        raise InvalidValueError("the contract has n_channels {} but {} channel names".format(n_ch, len(names)))
    if n_extracted != contract["model"]["n_features"]:
        raise InvalidValueError("{} channels with the contract's feature configuration give {} features per frame "
                                "but the model reads {}".format(n_ch, n_extracted, contract["model"]["n_features"]))
    sos = contract.get("filter_sos")
    if sos is not None:
        arr = np.asarray(sos, dtype=float)
        if arr.size % 6 or not np.all(np.isfinite(arr)):
            raise InvalidValueError("the contract's filter_sos must be finite rows of 6 coefficients")


def check_frame_timing(contract: Dict[str, Any], hop_samples: int, window_samples: int) -> None:
    """Refuse a contract whose ``frame_timing`` differs from the hop and window the device's extractor computes.

    Contracts without ``frame_timing`` (exported before it was recorded) pass: their extractor is the one they
    were trained with.
    """
    timing = contract.get("frame_timing")
    if timing is None:
        return
    if not isinstance(timing, dict):
        raise InvalidValueError("the contract's frame_timing must be an object, got {!r}".format(timing))
    want = (timing.get("hop_samples"), timing.get("window_samples"))
    if want != (hop_samples, window_samples):
        raise InvalidValueError("the contract's frame_timing is a hop of {} and a window of {} samples but its feature "
                                "configuration at {} Hz gives {} and {}".format(
                                    want[0], want[1], contract.get("fs_hz"), hop_samples, window_samples))
