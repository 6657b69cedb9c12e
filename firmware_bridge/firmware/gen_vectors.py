"""Write PROTOCOL.md's test vectors (../test_vectors.json) as a C header for the firmware's tests.

Standard library only: any Python 3 runs it (``python3 gen_vectors.py ../test_vectors.json build/vectors.h``).
"""

import json
import os
import sys

TYPES = {"HELLO": 1, "SET_POSITIONS": 2, "HEARTBEAT": 3, "ESTOP": 4, "STATUS": 5, "SAMPLES": 6}


def c_bytes(data):
    """Return bytes as a C initializer."""
    return "{" + ", ".join("0x{:02x}".format(b) for b in data) + "}"


def body(v, k):
    """Return a vector's message initializer and any array it points to."""
    d, t = v["decoded"], v["type"]
    if t == "HELLO":
        return (".u.hello = {{{role}, {caps}, {n_channels}, {fs_hz!r}f, {scale!r}f, {name}}}".format(
            name=json.dumps(d["name"]), **{k2: d[k2] for k2 in ("role", "caps", "n_channels", "fs_hz", "scale")}), "")
    if t == "SET_POSITIONS":
        return ".u.positions = {{{}}}".format(", ".join(map(str, d["positions"]))), ""
    if t == "HEARTBEAT":
        return ".u.uptime_ms = {}u".format(d["uptime_ms"]), ""
    if t == "ESTOP":
        return ".u.reason = {}".format(d["reason"]), ""
    if t == "STATUS":
        return (".u.status = {{{{{}}}, {}, {}, {}}}".format(", ".join(map(str, d["positions"])), d["faults"],
                                                           d["battery_mv"], d["state"]), "")
    if t == "SAMPLES":
        data = d["data"]
        raw = bytearray()
        for row in data:
            for v16 in row:
                raw += int(v16).to_bytes(2, "little", signed=True)
        arr = "static const uint8_t samples_{}[] = {};\n".format(k, c_bytes(raw))
        return (".u.samples = {{{}u, {}, {}, samples_{}}}".format(d["first_sample"], len(data), len(data[0]), k), arr)
    raise SystemExit("unknown type {}".format(t))


def main(src, out):
    """Write the header ``out`` from the vectors file ``src``."""
    vectors = json.load(open(src))["vectors"]
    pre, rows = [], []
    for k, v in enumerate(vectors):
        frame = bytes.fromhex(v["hex"])
        init, arr = body(v, k)
        pre.append(arr + "static const uint8_t frame_{}[] = {};\n".format(k, c_bytes(frame)))
        rows.append("    {{{name}, frame_{k}, sizeof frame_{k}, {{{type}, {seq}, {init}}}}},".format(
            name=json.dumps(v["name"]), k=k, type=TYPES[v["type"]], seq=int(v["seq"]), init=init))
    with open(out, "w") as f:
        f.write("/* generated from {} by gen_vectors.py: do not edit */\n".format(os.path.basename(src)))
        f.write("#include <stddef.h>\n#include <stdint.h>\n#include \"nh_frame.h\"\n\n")
        f.write("".join(pre))
        f.write("\nstruct nh_vector { const char *name; const uint8_t *frame; size_t len; nh_msg msg; };\n")
        f.write("static const struct nh_vector NH_VECTORS[] = {\n" + "\n".join(rows) + "\n};\n")
        f.write("#define NH_N_VECTORS {}\n".format(len(rows)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
