"""Subcommands for data sets: ``import`` (recordings to session files), ``export-session`` (NWB) and ``inspect``."""

import argparse
import json
import os

from neurohand.decoder.vocabulary import SIGNAL_KINDS


def register(sub: "argparse._SubParsersAction") -> None:
    """Add ``import``, ``export-session`` and ``inspect``."""
    p = sub.add_parser("import", help="import a real recording into a session file",
                       description="Convert NinaPro DB1, 3DC, CSV, NPZ, NPY or NWB recordings into neurohand session "
                       "files.")
    isub = p.add_subparsers(dest="format", metavar="FORMAT")
    isub.required = True

    n = isub.add_parser("ninapro", help="NinaPro DB1 exercise .mat file")
    n.add_argument("file", help="e.g. S2_A1_E1.mat")
    n.add_argument("--out", required=True, help="session file to write (.h5)")
    _overwrite_option(n)
    n.add_argument("--reps", default=None, help="repetitions to keep, e.g. 1-7 or 8,9,10 (default all)")
    n.set_defaults(func=_import_ninapro)

    t = isub.add_parser("3dc", help="3DC participant's train/ or test/ folder")
    t.add_argument("folder", help="a 3DC participant's train/ or test/ folder")
    t.add_argument("--out", required=True, help="session file to write (.h5)")
    _overwrite_option(t)
    t.set_defaults(func=_import_3dc)

    helps = {"csv": "delimited text, one row per sample", "npz": "NumPy archive of named arrays",
             "npy": "NumPy array of samples (numpy.save)"}
    for fmt in ("csv", "npz", "npy"):
        g = isub.add_parser(fmt, help="{} file(s): {}".format(fmt.upper(), helps[fmt]), description=(
            "Import one file, or every file a pattern names: 'DIR/S{subject}_D{session}_C{label}.%s' takes the "
            "movement class, repetition, session and subject of each file from its name (fields {label}, "
            "{repetition}, {session}, {subject}); each file becomes one segment. --out 'OUT/day{session}.h5' "
            "writes one session file per session, a plain --out one with all." % fmt).replace("%", "%%"))
        g.add_argument("file", help="the file to import, or a pattern with {label}, {repetition}, {session} or "
                       "{subject} in the file names (quote it)")
        g.add_argument("--out", required=True, help="session file to write (.h5); with a pattern it may name "
                       "{session} or {subject}: one session file each")
        _overwrite_option(g)
        g.add_argument("--fs-hz", type=float, required=True, help="sample rate (required)")
        g.add_argument("--kind", default="emg", choices=SIGNAL_KINDS,
                       help="signal kind, selects the feature configuration (default emg)")
        g.add_argument("--mains-hz", type=float, default=None, choices=(50.0, 60.0), metavar="{50,60}",
                       help="mains frequency where it was recorded (50 in Europe, 60 in the Americas), kept in the "
                            "session: EMG features notch it (default: not recorded, 50 assumed)")
        g.add_argument("--units", default="", help="unit of the samples")
        g.add_argument("--class-names", default=None, help="comma-separated class names, rest first")
        g.add_argument("--label-map", default=None, help="with {label} in a pattern: the labels in class order, "
                       "rest first: the names themselves (rest,fist,open) or VALUE=NAME pairs (1=rest,2=fist); "
                       "without rest, rest becomes class 0 (default: the labels are class numbers, 0 = rest)")
        g.add_argument("--repetition-zero", default="error", choices=("error", "none", "shift"),
                       help="a repetition 0 (in a column or a file name): error (default; neurohand reads 0 as no "
                            "repetition, never held out), none (0 means no repetition) or shift (counted from 0: "
                            "renumber 0, 1, ... as 1, 2, ...)")
        if fmt == "csv":
            # parsed by the handler: a bad list is one line (exit 2), not argparse's usage and a generic message
            g.add_argument("--signal-columns", default=None,
                           help="columns counted from 0 or named by the header row: 0-9, emg0,emg1 or emg0-emg7 "
                                "(default: every column no other option names)")
            g.add_argument("--label-column", default=None, help="movement class column (0 = rest), number or name")
            g.add_argument("--repetition-column", default=None,
                           help="repetition (trial) column, number or name; repetitions count from 1")
            g.add_argument("--position-columns", default=None,
                           help="5 columns in 0..1 (thumb..little), numbers or names")
            g.add_argument("--delimiter", default="auto",
                           help="between columns: one character (',', ';', '\\t' or tab), whitespace (runs of "
                                "spaces and tabs) or auto (default: detected from the first lines)")
            g.add_argument("--skip-rows", type=int, default=0, help="lines to skip before the header row or data")
            hdr = g.add_mutually_exclusive_group()
            hdr.add_argument("--header", dest="header", action="store_const", const=True, default=None,
                             help="the first line (after --skip-rows) names the columns (default: detected, a "
                                  "first line without numbers is a header)")
            hdr.add_argument("--no-header", dest="header", action="store_const", const=False,
                             help="the first line is data")
            g.set_defaults(func=_import_csv)
        elif fmt == "npy":
            g.add_argument("--channels-first", action="store_true",
                           help="the array is (n_channels, n_samples) (default: (n_samples, n_channels))")
            g.set_defaults(func=_import_npy)
        else:
            g.add_argument("--signals-key", default="signals", help="array of samples, (n_samples, n_channels)")
            g.add_argument("--labels-key", default=None, help="array of class labels per sample, (n_samples,)")
            g.add_argument("--positions-key", default=None, help="array of finger positions in 0..1, (n_samples, 5)")
            g.add_argument("--repetitions-key", default=None, help="array of repetition numbers per sample")
            g.set_defaults(func=_import_npz)

    w = isub.add_parser("nwb", help="Neurodata Without Borders file (an ElectricalSeries, trials, behaviour)",
                        description="Read an NWB file (the DANDI archive's format): an ElectricalSeries in "
                        "acquisition (in microvolts), finger positions from a behaviour TimeSeries of 5 columns in "
                        "0..1, movement labels from an intervals table; samples outside every interval are rest.")
    w.add_argument("file", help="the .nwb file")
    w.add_argument("--out", required=True, help="session file to write (.h5)")
    _overwrite_option(w)
    w.add_argument("--series", default=None, help="the ElectricalSeries to read (needed when there are several)")
    w.add_argument("--intervals", default="trials", help="the intervals table of labelled movements (default "
                   "trials)")
    w.add_argument("--label-column", default=None, help="its column naming the movement (default label, or its "
                   "only other column)")
    w.add_argument("--positions", default=None, help="the behaviour TimeSeries of finger positions (default "
                   "finger_positions, when there)")
    w.add_argument("--kind", default=None, choices=SIGNAL_KINDS, help="signal kind (default: what neurohand wrote, "
                   "else emg)")
    w.add_argument("--class-names", default=None, help="comma-separated class names in order, rest first (default: "
                   "rest, then the labels as they first appear)")
    w.add_argument("--mains-hz", type=float, default=None, choices=(50.0, 60.0), metavar="{50,60}",
                   help="mains frequency where it was recorded, kept in the session")
    w.set_defaults(func=_import_nwb)

    e = sub.add_parser("export-session", help="write a session file in another format (NWB)",
                       description="Write a session file as Neurodata Without Borders (NWB 2): the samples, the "
                       "finger positions, labels as trials, repetitions, segments and cues; 'neurohand import nwb' "
                       "reads it back exactly.")
    e.add_argument("session", help="session file (.h5)")
    e.add_argument("--nwb", required=True, help="the .nwb file to write")
    e.set_defaults(func=_export_session)

    i = sub.add_parser("inspect", help="print the summary of a session file")
    i.add_argument("file", help="session file (.h5)")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=_inspect)



def _overwrite_option(parser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace session files already there (without it "
                        "an existing file is refused)")


def _check_new(outs, overwrite: bool) -> None:
    """Refuse to replace a session file unless told: nothing recorded is replaced by mistake."""
    from neurohand.decoder.errors import InvalidValueError

    there = [o for o in outs if os.path.exists(o)]
    if there and not overwrite:
        raise InvalidValueError("{} already exists: import into a new file, or give --overwrite to replace it".format(
            there[0] if len(there) == 1 else "{} and {} more".format(there[0], len(there) - 1)))


def _write(rec, out: str) -> int:
    from neurohand.decoder.session_file import write_recording

    d = os.path.dirname(os.path.abspath(out))
    os.makedirs(d, exist_ok=True)
    write_recording(rec, out)
    s = rec.summary()
    print("wrote {}: {} samples x {} channels at {:g} Hz ({}), {} segments, positions: {}, classes: {}".format(
        out, s["samples"], s["channels"], s["fs_hz"], s["signal_kind"], s["segments"],
        "yes" if rec.has_positions else "no", len(rec.class_names)))
    return 0


def _import_ninapro(args: argparse.Namespace) -> int:
    from neurohand.decoder.validation import parse_index_ranges

    from .importers import import_ninapro

    reps = parse_index_ranges("--reps", args.reps) if args.reps else None
    _check_new([args.out], args.overwrite)
    return _write(import_ninapro(args.file, reps=reps), args.out)


def _import_3dc(args: argparse.Namespace) -> int:
    from .importers import import_3dc

    _check_new([args.out], args.overwrite)
    return _write(import_3dc(args.folder), args.out)


FS_LIMITS_HZ = (1.0, 1.0e6)  # a recording's sample rate an import accepts


def _checked_fs(fs_hz: float) -> float:
    from neurohand.decoder.validation import check_positive, invalid_value

    if not FS_LIMITS_HZ[0] <= check_positive("--fs-hz", fs_hz) <= FS_LIMITS_HZ[1]:
        raise invalid_value("--fs-hz", "expected {:g} to {:g} Hz, got {:g}".format(FS_LIMITS_HZ[0], FS_LIMITS_HZ[1],
                                                                                  fs_hz))
    return fs_hz


def _class_names(text):
    return [c.strip() for c in text.split(",")] if text else None


def _import_files(args: argparse.Namespace, read) -> int:
    """Import ``args.file``, or every file its pattern names; ``read(path, class_names)`` reads one."""
    from neurohand.decoder.validation import invalid_value

    from .importers.file_pattern import combine, groups, is_pattern, match_files, parse_label_map, pattern_fields

    names = _class_names(args.class_names)
    if not is_pattern(args.file):
        if pattern_fields(args.out, flag="--out"):
            raise invalid_value("--out", "one file name when FILE is one file (fields such as {{session}} need a "
                                "pattern in FILE), got {!r}".format(args.out))
        if args.label_map:
            raise invalid_value("--label-map", "a pattern with {{label}} in FILE; {!r} is one file".format(args.file))
        _check_new([args.out], args.overwrite)
        return _write(read(args.file, names), args.out)
    files = match_files(args.file)
    label_map = parse_label_map(args.label_map)
    in_name = "label" in files[0].fields
    if label_map is not None and not in_name:
        raise invalid_value("--label-map", "a pattern with {{label}} in it, got {!r}".format(args.file))
    split = groups(files, args.out)
    _check_new([out for out, _ in split], args.overwrite)
    print("{} files match {}".format(len(files), args.file))
    recs = [(out, combine(group, lambda p: read(p, None if in_name else names), label_map=label_map,
                          class_names=names, repetition_zero=args.repetition_zero, source=args.file))
            for out, group in split]  # every file read before any is written: a bad one leaves nothing half done
    for out, rec in recs:
        _write(rec, out)
    return 0


def _import_csv(args: argparse.Namespace) -> int:
    from .importers import import_csv

    fs_hz = _checked_fs(args.fs_hz)
    return _import_files(args, lambda path, names: import_csv(
        path, fs_hz=fs_hz, signal_columns=args.signal_columns, signal_kind=args.kind,
        label_column=args.label_column, position_columns=args.position_columns,
        repetition_column=args.repetition_column, repetition_zero=args.repetition_zero, delimiter=args.delimiter,
        skip_rows=args.skip_rows, header=args.header, units=args.units, class_names=names, mains_hz=args.mains_hz))


def _import_npz(args: argparse.Namespace) -> int:
    from .importers import import_npz

    fs_hz = _checked_fs(args.fs_hz)
    return _import_files(args, lambda path, names: import_npz(
        path, fs_hz=fs_hz, signals_key=args.signals_key, signal_kind=args.kind, labels_key=args.labels_key,
        positions_key=args.positions_key, repetitions_key=args.repetitions_key, units=args.units, class_names=names,
        mains_hz=args.mains_hz))


def _import_npy(args: argparse.Namespace) -> int:
    from .importers import import_npy

    fs_hz = _checked_fs(args.fs_hz)
    return _import_files(args, lambda path, names: import_npy(
        path, fs_hz=fs_hz, signal_kind=args.kind, channels_first=args.channels_first, units=args.units,
        class_names=names, mains_hz=args.mains_hz))


def _import_nwb(args: argparse.Namespace) -> int:
    from .importers.nwb import import_nwb

    _check_new([args.out], args.overwrite)
    return _write(import_nwb(args.file, series=args.series, intervals=args.intervals, label_column=args.label_column,
                             positions=args.positions, signal_kind=args.kind,
                             class_names=_class_names(args.class_names), mains_hz=args.mains_hz), args.out)


def _export_session(args: argparse.Namespace) -> int:
    from neurohand.decoder.session_file import read_recording

    from .importers.nwb import export_nwb

    rec = read_recording(args.session)
    if os.path.exists(args.nwb):
        from neurohand.decoder.errors import InvalidValueError

        raise InvalidValueError("{} exists; give another --nwb file (nothing is overwritten)".format(args.nwb))
    partial = args.nwb + ".partial.nwb"  # written whole, then renamed: a stop never leaves half a file under the name
    export_nwb(rec, partial)
    os.replace(partial, args.nwb)
    print("wrote {}: {} samples x {} channels at {:g} Hz{}{}".format(
        args.nwb, rec.n_samples, rec.n_channels, rec.fs_hz, ", finger positions" if rec.has_positions else "",
        ", labels of {} classes besides rest".format(len(rec.class_names) - 1) if rec.labels is not None else ""))
    if rec.units not in ("uV", "mV", "V"):
        print("note: the samples are in {!r}, not volts: the ElectricalSeries says volts with conversion 1.0 (NWB "
              "has no other unit for it); 'neurohand import nwb' reads them back as {!r}, other tools as volts".format(
                  rec.units or "unknown units", rec.units))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from neurohand.decoder.session_file import read_recording

    s = read_recording(args.file).summary()
    if args.json:
        print(json.dumps(s))
    else:
        for k, v in s.items():
            print("{:>12}: {}".format(k, v))
    return 0
