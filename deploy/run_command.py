"""``neurohand run`` and ``neurohand keys``: the device's decoding loop and keyboard profiles from the command line.

Each opens its source and sink through :mod:`deploy.sources` and hands them to :class:`deploy.runtime.Runtime`.
"""

from neurohand.decoder.bundle import Bundle
from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.validation import check_positive

from .runlog import JsonLog
from .runtime import MAX_AGE_MS, HandSink, NoneSink, Runtime, RuntimeConfig


def register(sub) -> None:
    """Add ``neurohand run`` and ``neurohand keys`` (the keyboard sink's own command)."""
    register_keys(sub)
    p = sub.add_parser("run", help="the standalone decoding loop: source -> decoder -> hand",
                       description="Decode a signal source with a bundle and drive the hand (or nothing).")
    p.add_argument("--bundle", required=True, help="bundle folder from 'neurohand export', or a model store's "
                   "STORE/PATIENT/current.json (or STORE/PATIENT): the patient's current version")
    p.add_argument("--source", default=None, help="sim | replay:FILE.h5 | serial:PORT | lsl:NAME (default sim, "
                   "when the simulator's rate and channels fit the bundle; otherwise required)")
    p.add_argument("--hand", default="none", help="serial:PORT | none (default none)")
    p.add_argument("--engine", default="auto", choices=["auto", "tensorrt", "onnxruntime", "numpy"],
                   help="inference engine (default auto: TensorRT where an engine is built, else onnxruntime)")
    p.add_argument("--seconds", type=float, default=None,
                   help="stop after this long (with --fast: after this much of the recording)")
    p.add_argument("--fast", action="store_true", help="replay as fast as possible instead of in real time")
    p.add_argument("--max-age-ms", type=float, default=MAX_AGE_MS,
                   help="drop frames older than this when their command would be sent, with a 'late' fault and "
                   "the safe posture (default {:g}; from the arrival of the frame's last sample)".format(MAX_AGE_MS))
    p.add_argument("--log", default=None, help="append statistics, events and every decoded frame as JSON lines, "
                   "flushed at least once a second")
    p.add_argument("--log-max-mb", type=float, default=100.0, help="rotate --log at this size (default 100; 5 kept)")
    p.add_argument("--live", action="store_true", help="terminal view: fingers, class, signal levels, latency")
    p.add_argument("--keys", default=None, help="keyboard/game control profile: a TOML file, or the name of one that "
                   "comes with neurohand (fps, shooter); with or without a hand")
    p.add_argument("--outlet", default="none", help="lsl | lsl:NAME | none: also publish the commands and class "
                   "probabilities as a Lab Streaming Layer stream (default name neurohand)")
    p.add_argument("--trusted-keys", default=None, help="folder of public keys (.pub from 'neurohand keygen'): decode "
                   "only a bundle signed by one of them (the service unit sets /etc/neurohand/trusted-keys)")
    p.add_argument("--allow-replay-into-hand", action="store_true",
                   help="let a recording (replay:) or the simulator (sim) drive a real hand (bench tests only)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import sys

    from .sources import open_source, parse_device_spec, source_for

    if args.seconds is not None:
        check_positive("--seconds", args.seconds)
    config = RuntimeConfig(engine=args.engine, max_age_ms=args.max_age_ms)  # checked before any device opens
    from .store_paths import resolve_bundle

    path = resolve_bundle(args.bundle)
    if args.trusted_keys is not None:
        from neurohand.decoder.signature import trusted_keys, verify_bundle

        key_id = verify_bundle(path, trusted_keys(args.trusted_keys))
        print("bundle {} signed by trusted key {}".format(path, key_id), file=sys.stderr)
    bundle = Bundle(path)
    hand = parse_device_spec("--hand", args.hand, ("serial", "none"))
    outlet = parse_device_spec("--outlet", "lsl:neurohand" if args.outlet == "lsl" else args.outlet, ("lsl", "none"))
    src_kind = parse_device_spec("--source", args.source or "sim", ("sim", "replay", "serial", "lsl")).kind
    if hand.kind != "none" and src_kind in ("sim", "replay") and not args.allow_replay_into_hand:
        raise InvalidValueError("Refusing to drive the hand on {} from {!r}: a recording or the simulator only moves "
                                "a hand with --allow-replay-into-hand".format(hand.target, args.source or "sim"))
    if hand.kind != "none" and args.fast:
        raise InvalidValueError("Refusing to drive the hand on {} with --fast: a replay into a hand runs in real "
                                "time (drop --fast)".format(hand.target))
    if not args.log_max_mb > 0:
        raise InvalidValueError("--log-max-mb must be > 0, got {}".format(args.log_max_mb))
    sink = NoneSink() if hand.kind == "none" else HandSink(hand.target)
    try:
        spec = source_for(args.source, fs_hz=bundle.fs_hz, n_channels=bundle.n_channels,
                          model="the model in {}".format(bundle.path))
    except InvalidValueError:
        sink.close()
        raise
    source = open_source(spec, chunk_samples=bundle.hop_samples, fast=args.fast)
    extra = []
    try:
        if args.keys:
            from .keys_sink import KeysSink

            extra.append(KeysSink(args.keys, bundle.class_names))
        if outlet.kind == "lsl":
            from .lsl_outlet import STREAM_TYPE, LslOutletSink

            extra.append(LslOutletSink(outlet.target, class_names=bundle.class_names,
                                       frame_rate_hz=1000.0 / bundle.feature_config.hop_ms))
            extra[-1].safe_posture = sink.safe_posture  # it publishes what the hand is sent
            print("publishing the LSL stream {!r} (type {}): 5 commands and {} class probabilities a frame".format(
                outlet.target, STREAM_TYPE, len(bundle.class_names)), file=sys.stderr)
    except BaseException:
        for device in [sink, source] + extra:
            device.close()
        raise
    if extra:
        from .keys_sink import MultiSink

        sink = MultiSink(extra if hand.kind == "none" and args.keys else [sink] + extra)
    view = None
    if args.live:  # drawn by its own process, forked here before any engine or decoding thread exists
        from .live_view import LiveView

        view = LiveView(bundle.class_names, channel_names=getattr(source, "channel_names", None) or
                        bundle.contract.get("channel_names"), units=getattr(source, "units", None) or "signal units",
                        drives_fingers=bool(bundle.contract["model"].get("positions", True))).__enter__()
    json_log = JsonLog(args.log, max_bytes=int(args.log_max_mb * 1e6)) if args.log else None
    try:
        rt = Runtime(bundle, source, sink, log=lambda m: print(m, file=sys.stderr),
                     on_chunk=view.on_chunk if view else None, json_log=json_log,
                     config=config)
        stats = rt.run(seconds=args.seconds)
    finally:
        if view is not None:
            view.__exit__(None, None, None)
    s = stats.summary()
    print("engine {}: {} frames, latency median {:.2f} ms, p99 {:.2f} ms, overruns {}, faults {}{}".format(
        rt.engine.name, s["frames"], s["latency_ms"]["median"], s["latency_ms"]["p99"], s["overruns"], s["faults"],
        "; log: {} lines dropped ({})".format(s["log_dropped_lines"], args.log) if s["log_dropped_lines"] else ""))
    for device in getattr(sink, "sinks", [sink]):
        if isinstance(device, HandSink):
            print(device.report())
    return 0


def register_keys(sub) -> None:
    """Add ``neurohand keys``."""
    p = sub.add_parser("keys", help="keyboard/game control profiles: check one, or dry-run it on a decoded stream",
                       description="--check validates a profile (with --bundle, its class names too) and exits "
                       "non-zero on any error. --dry-run decodes --source with --bundle and prints the key events "
                       "the profile would send (output enabled from the start), pressing nothing.")
    p.add_argument("--profile", required=True,
                   help="keyboard profile: a TOML file, or the name of one that comes with neurohand (fps, shooter)")
    p.add_argument("--check", action="store_true", help="validate the profile (with --bundle, its class names too)")
    p.add_argument("--show", action="store_true", help="print the profile's TOML (a start for one of your own: "
                   "neurohand keys --profile fps --show > mine.toml)")
    p.add_argument("--dry-run", action="store_true", help="decode --source and print the key events, pressing nothing")
    p.add_argument("--bundle", default=None, help="the bundle whose classes the profile binds")
    p.add_argument("--source", default=None, help="as for 'neurohand run' (default sim when it fits the bundle)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long a dry run decodes (default 10)")
    p.add_argument("--fast", action="store_true", help="replay as fast as possible instead of in real time")
    p.set_defaults(func=_keys)


def _keys(args) -> int:
    from .keymap import load_profile

    check_positive("--seconds", args.seconds)

    if args.show:
        from .keymap import profile_path

        with open(profile_path(args.profile), encoding="utf-8") as f:
            print(f.read(), end="")
        return 0
    classes = Bundle(args.bundle).class_names if args.bundle else None
    prof = load_profile(args.profile, class_names=classes)
    if args.check or not args.dry_run:
        print("{}: OK, {} bindings{}".format(args.profile, len(prof.bindings),
                                             "" if classes else " (class names not checked: no --bundle)"))
        return 0
    if not args.bundle:
        raise InvalidValueError("--dry-run needs --bundle (the decoder whose output drives the keys)")
    from .keys_sink import KeysSink
    from .sources import open_source, source_for

    bundle = Bundle(args.bundle)
    spec = source_for(args.source, fs_hz=bundle.fs_hz, n_channels=bundle.n_channels,
                      model="the model in {}".format(bundle.path))
    source = open_source(spec, chunk_samples=bundle.hop_samples, fast=args.fast)
    sink = KeysSink(args.profile, bundle.class_names, dry_run=True, start_enabled=True)
    stats = Runtime(bundle, source, sink).run(seconds=args.seconds)
    print("{} frames, {} key events (dry run: nothing was pressed)".format(stats.frames, len(sink.sent)))
    return 0
