"""Peer check: a plain zenoh subscriber (the Python `eclipse-zenoh` package,
at the zenoh version rmw_zenoh's Jazzy release vendors) hears nines on an
rmw_zenoh key, decodes the CDR payload with the published ros2msg schema
(mcap-ros2-support's decoder) and reads the rmw_zenoh attachment. Also
lists the liveliness tokens a `ros2 topic list` would see.

usage: zenoh_listen.py ENDPOINT KEY TYPE_NAME SCHEMA_FILE COUNT
Prints "ready", then one JSON object per sample, then the tokens."""
import json
import struct
import sys

import zenoh
from mcap_ros2._dynamic import generate_dynamic

from ros2_dump import plain


def main() -> None:
    endpoint, key, type_name, schema_file, count = sys.argv[1:6]
    with open(schema_file, encoding="utf-8") as f:
        decode = generate_dynamic(type_name, f.read())[type_name]
    conf = zenoh.Config()
    conf.insert_json5("mode", json.dumps("peer"))
    conf.insert_json5("connect/endpoints", json.dumps([endpoint]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    with zenoh.open(conf) as session:
        sub = session.declare_subscriber(key)
        print(json.dumps({"ready": True, "zenoh": zenoh.__version__ if hasattr(zenoh, "__version__") else "?"}), flush=True)
        for _ in range(int(count)):
            sample = sub.recv()
            payload = sample.payload.to_bytes()
            attachment = sample.attachment.to_bytes() if sample.attachment is not None else b""
            seq, ts, gid_len = struct.unpack_from("<qqB", attachment, 0)
            print(json.dumps({
                "key": str(sample.key_expr),
                "encapsulation": list(payload[:4]),
                "message": plain(decode(payload)),
                "attachment_len": len(attachment),
                "sequence_number": seq,
                "source_timestamp": ts,
                "gid": list(attachment[17:17 + gid_len]),
            }), flush=True)
        tokens = [str(r.ok.key_expr) for r in session.liveliness().get("@ros2_lv/**") if r.ok is not None]
        print(json.dumps({"tokens": tokens}), flush=True)


if __name__ == "__main__":
    main()
