"""Export a trained model folder to a bundle: ONNX step graph with explicit state, plain-array weights, contract.

The graph is exported with the TorchScript-based exporter (``dynamo=False``) at opset 13, which TensorRT 8.2
(JetPack 4.6, the original Jetson Nano) accepts; the dynamo exporter writes GRU with the wrong
``linear_before_reset`` and is silently wrong. ``onnx.checker`` runs on every export, and the exported graph is
compared step by step with PyTorch before the bundle is written.
"""

import json
import os
import shutil
import warnings
from typing import Any, Dict, Optional, Sequence

import numpy as np

from neurohand.decoder.bundle import Bundle, schema_version_for, sha256_of, write_bundle_json
from neurohand.decoder.bundle_check import CONTRACT_KEY, SCHEMA_KEY, WEIGHTS_KEY
from neurohand.decoder.errors import InvalidValueError, NeurohandError
from neurohand.decoder.feature_config import FeatureConfig
from neurohand.decoder.filters import design_sos
from neurohand.decoder.grips import MIN_PROBABILITY, GripTable, grip_table
from neurohand.decoder.latency_defaults import DEFAULT_SMOOTHING_MS
from neurohand.decoder.postprocess import check_smoothing_ms
from neurohand.decoder.signature import SIGNATURE_FILE, sign_bundle

OPSET = 13


class ExportError(NeurohandError, RuntimeError):
    """The model cannot be exported to a bundle that decodes: non-finite weights or a failed parity check."""


def _step_module(model):
    """One decoder step as a module: the model's layers, laid out so the graph has no batch/time transposes."""
    import copy

    import torch

    class Step(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m
            # the same weights in a sequence-first recurrent layer: a (1, 1, F) input needs no Transpose nodes
            self.rnn = copy.deepcopy(m.rnn)
            self.rnn.batch_first = False

        def forward(self, features, h, c=None):
            m = self.m
            zn = (features - m.feature_mean) / m.feature_std
            z = m.proj(zn)
            state = h if c is None else (h, c)
            out, new = self.rnn(z[None], state)
            o = out[0]
            pos, logits = torch.sigmoid(m.position_head(o)), m.class_output(zn, m.class_head(o))
            if c is None:
                return pos, logits, new
            return pos, logits, new[0], new[1]

    return Step(model).eval()


def contract_from(meta: Dict[str, Any], model_config: Dict[str, Any], *,
                  smoothing_ms: Optional[float] = None, grips: Optional[GripTable] = None) -> Dict[str, Any]:
    """Build the bundle contract from a model folder's ``model.json``.

    ``smoothing_ms`` is the post-processing's, ``grips`` a gesture model's.
    """
    from neurohand.training.model_dir import lead_ms_of  # torch: only when exporting

    vm = meta.get("val_metrics", {})
    fcfg = FeatureConfig.from_dict(meta["feature_config"])
    contract = {
        "fs_hz": meta["fs_hz"],
        "n_channels": meta["n_channels"],
        "channel_names": meta["channel_names"],
        "signal_kind": meta["signal_kind"],
        "feature_config": meta["feature_config"],
        "frame_timing": fcfg.timing(meta["fs_hz"]),
        "filter_sos": design_sos(fcfg.filters, meta["fs_hz"]).tolist(),
        "normalisation": meta["normalisation"],
        "adaptation": meta.get("adaptation"),
        "class_names": meta["class_names"],
        "model": {**model_config, "state_shape": [model_config["layers"], 1, model_config["hidden"]]},
        "model_version": meta.get("created", ""),
        "post": {"smoothing_ms": float(DEFAULT_SMOOTHING_MS if smoothing_ms is None else smoothing_ms)},
        "training": {
            "val_r2_mean": vm.get("r2_mean"),
            "val_accuracy": vm.get("accuracy"),
            "best_epoch": meta.get("best_epoch"),
            "training_files": meta.get("training_files", []),
            "torch_version": meta.get("torch_version"),
            "target_lead_ms": lead_ms_of(meta),  # what the network was trained to output
        },
    }
    if grips is not None:
        contract["grips"] = grips.to_contract()
    return contract


def load_grips(path: str, class_names: Sequence[str]) -> GripTable:
    """Read a grips TOML file (:mod:`decoder.grips`): ``min_probability`` and a ``[classes]`` table."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib  # novermin - only on 3.11+, tomli before
    else:  # pragma: no cover - Python 3.8-3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise InvalidValueError("--grips {}: no such file".format(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InvalidValueError("--grips {}: {}".format(path, e)) from None
    extra = set(doc) - {"min_probability", "classes"}
    if extra or not isinstance(doc.get("classes", {}), dict):
        raise InvalidValueError("--grips {}: expected 'min_probability' and a [classes] table, got {}".format(
            path, ", ".join(sorted(extra)) or "classes = {!r}".format(doc.get("classes"))))
    return grip_table(class_names, overrides=doc.get("classes", {}),
                      min_probability=doc.get("min_probability", MIN_PROBABILITY))


def export_bundle(model_dir: str, out_dir: str, *, parity_frames: int = 200, tolerance: float = 1e-4,
                  smoothing_ms: Optional[float] = None, grips: Optional[str] = None) -> Bundle:
    """Export ``model_dir`` (from ``neurohand train``) to the bundle folder ``out_dir``.

    ``smoothing_ms`` is the commands' smoothing the device applies (the contract's ``post``; default
    :data:`~neurohand.decoder.latency_defaults.DEFAULT_SMOOTHING_MS`, 0 to 1000 ms). ``grips``: a gesture model's
    (no finger positions trained) grips TOML file (:mod:`decoder.grips`); default: each class read by its name.

    Raises
    ------
    ExportError
        If the model's weights are not finite, or the exported graph differs from PyTorch by more than
        ``tolerance`` over ``parity_frames`` random
        frames with the state carried.
    """
    import onnx
    import torch

    from neurohand.training.model_dir import load_model_dir

    if smoothing_ms is not None:
        check_smoothing_ms("smoothing_ms", smoothing_ms)
    model, meta = load_model_dir(model_dir)
    cfg = model.config
    if cfg.positions:
        if grips is not None:
            raise InvalidValueError("--grips is for a gesture model (classes only); {!r} decodes finger "
                                    "positions".format(model_dir))
        table = None
    else:
        table = grip_table(meta["class_names"]) if grips is None else load_grips(grips, meta["class_names"])
    weights = numpy_weights(model)
    bad = sorted(k for k, v in weights.items() if not np.all(np.isfinite(v)))
    if bad:  # before anything is written: such a model outputs NaN on every frame
        raise ExportError("{!r} holds non-finite weights (NaN or infinity) in {}: this model cannot decode; retrain "
                          "it from finite data (neurohand inspect SESSION shows the signal range)".format(
                              model_dir, ", ".join(bad)))
    os.makedirs(out_dir, exist_ok=True)
    for name in ("bundle.json", "model.onnx", "weights.npz", SIGNATURE_FILE):  # an old signature signs nothing new
        if os.path.exists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))
    for name in os.listdir(out_dir):  # engines built for an older model
        if name.startswith("engine-") and name.endswith(".plan"):
            os.remove(os.path.join(out_dir, name))
    step = _step_module(model)
    F, L, H = cfg.n_features, cfg.layers, cfg.hidden
    x = torch.zeros(1, F)
    h = torch.zeros(L, 1, H)
    args = (x, h) if cfg.cell == "gru" else (x, h, torch.zeros(L, 1, H))
    inputs = ["features", "h"] + (["c"] if cfg.cell == "lstm" else [])
    outputs = ["positions", "class_logits", "h_out"] + (["c_out"] if cfg.cell == "lstm" else [])
    onnx_path = os.path.join(out_dir, "model.onnx")
    with warnings.catch_warnings():
        # the exporter warns that a GRU exported with batch > 1 may misbehave; this graph is batch 1 by design
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        # the legacy exporter is chosen on purpose (see the module docstring); its deprecation notices and the
        # tracer's notes on nn.GRU's input checks say nothing about this graph
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                module=r"torch\.onnx.*|neurohand\.training\.export")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(step, args, onnx_path, input_names=inputs, output_names=outputs, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True)
    proto = onnx.load(onnx_path)
    onnx.checker.check_model(proto)
    contract = contract_from(meta, cfg.to_dict(), smoothing_ms=smoothing_ms, grips=table)
    np.savez(os.path.join(out_dir, "weights.npz"), **weights)
    # the seal (decoder/bundle_check.py): the contract, the schema and the weights' hash inside the hashed graph
    del proto.metadata_props[:]
    for key, value in ((CONTRACT_KEY, json.dumps(contract)), (SCHEMA_KEY, str(schema_version_for(contract))),
                       (WEIGHTS_KEY, sha256_of(os.path.join(out_dir, "weights.npz")))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, onnx_path)
    write_bundle_json(out_dir, contract, ["model.onnx", "weights.npz"])
    try:
        bundle = Bundle(out_dir)
        err = parity_error(model, bundle, frames=parity_frames)
    except Exception:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    if not np.isfinite(err) or err > tolerance:  # NaN > tolerance is False: a NaN model once passed as "checked"
        shutil.rmtree(out_dir, ignore_errors=True)
        raise ExportError("Exported graph differs from PyTorch by {:.2e} (> {:.0e}) over {} frames; bundle not "
                          "written".format(err, tolerance, parity_frames))
    return bundle


def numpy_weights(model) -> Dict[str, np.ndarray]:
    """Plain arrays for the numpy engine."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    out = {"feature_mean": sd["feature_mean"], "feature_std": sd["feature_std"],
           "position_weight": sd["position_head.weight"], "position_bias": sd["position_head.bias"],
           "class_weight": sd["class_head.weight"], "class_bias": sd["class_head.bias"]}
    if model.config.projection:
        out["proj_weight"], out["proj_bias"] = sd["proj.0.weight"], sd["proj.0.bias"]
    if model.pools_classes:
        out["pool_weight"], out["pool_bias"] = sd["pool_weight"], sd["pool_bias"]
    for k in range(model.config.layers):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            out["rnn_{}_l{}".format(kind, k)] = sd["rnn.{}_l{}".format(kind, k)]
    return out


def parity_error(model, bundle: Bundle, *, frames: int = 200, seed: int = 0) -> float:
    """Largest absolute difference between PyTorch and onnxruntime over random frames, state carried.

    ``inf`` when either output is not finite.
    """
    import torch

    from neurohand.decoder.engines import create_engine

    rng = np.random.default_rng(seed)
    mean = model.feature_mean.numpy()
    std = model.feature_std.numpy()
    xs = (mean + std * rng.normal(size=(frames, model.config.n_features))).astype(np.float32)
    eng = create_engine(bundle, "onnxruntime")
    state = eng.new_state()
    with torch.no_grad():
        pos_t, log_t, _ = model(torch.as_tensor(xs)[None])
    worst = 0.0
    for t in range(frames):
        out, state = eng.step(state, xs[t])
        d = max(float(np.max(np.abs(out.positions - pos_t[0, t].numpy()))),
                float(np.max(np.abs(out.class_logits - log_t[0, t].numpy()))))
        if not np.isfinite(d):  # max() would drop a NaN: a model whose outputs are not finite never passes
            return float("inf")
        worst = max(worst, d)
    return worst


def register(sub) -> None:
    """Add ``neurohand export`` (``neurohand build-engine`` is a device command: deploy/device_commands.py)."""
    p = sub.add_parser("export", help="export a trained model folder to a bundle (ONNX step graph + weights)",
                       description="Write BUNDLE_DIR with model.onnx (one step, explicit state, opset 13, "
                       "TorchScript exporter), weights.npz and bundle.json (contract + sha256 of each file).")
    p.add_argument("model_dir", help="model folder from 'neurohand train'")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace the bundle already in --out (without it an "
                   "existing bundle is refused: a device may be decoding it)")
    p.add_argument("--sign", default=None, metavar="KEY", help="sign the bundle with this private key (from "
                   "'neurohand keygen'): a device with --trusted-keys decodes only signed bundles")
    p.add_argument("--grips", default=None, metavar="TOML", help="a gesture model's grips: what each class does "
                   "to the hand (default: read from the class names: rest, open, power, pinch, key, point, tripod; "
                   "any other class holds)")
    p.add_argument("--smoothing-ms", type=float, default=None,
                   help="time constant of the commands' smoothing on the device, 0 to 1000 ms (0: none; default "
                        "{:g}); the velocity limit stays the runtime's".format(DEFAULT_SMOOTHING_MS))
    p.set_defaults(func=_export)


def _export(args) -> int:
    if os.path.exists(os.path.join(args.out, "bundle.json")) and not args.overwrite:
        raise InvalidValueError("{} already holds a bundle: export into a new folder, or give --overwrite to replace "
                                "it".format(args.out))
    if args.sign is not None and not os.path.isfile(args.sign):
        raise InvalidValueError("--sign {}: no such key file (make one with: neurohand keygen --out NAME)".format(
            args.sign))
    b = export_bundle(args.model_dir, args.out, smoothing_ms=args.smoothing_ms, grips=args.grips)
    if args.sign is not None:
        print("signed {} with key {}".format(args.out, sign_bundle(args.out, args.sign)))
    m = b.contract["model"]
    print("wrote {}: {} {}x{}, {} features, {} classes, {} ch at {:g} Hz; parity with PyTorch checked".format(
        args.out, m["cell"].upper(), m["layers"], m["hidden"], m["n_features"], m["n_classes"], b.n_channels,
        b.fs_hz))
    table = b.grip_table()
    if table is not None:
        print("grips (a class switches the grip at probability {:g} or above):".format(table.min_probability))
        for line in table.describe(b.class_names):
            print("  " + line)
        if all(p is None for p in table.postures):
            print("note: no class name reads as a grip, so the hand holds its posture; give --grips FILE (see "
                  "docs/decoder-design.md, Grips)")
    return 0
