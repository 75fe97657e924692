"""Peer check: decode a drive with the Python `mcap` + `mcap-ros2-support`
readers and print one JSON object per message (topic, schema, log time, and
the decoded message as plain data). Used by the test suite."""
import array
import json
import sys

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory


def plain(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return list(bytes(value))
    if isinstance(value, array.array):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays
        return value.tolist()
    slots = getattr(type(value), "__slots__", None)
    if slots:
        return {k: plain(getattr(value, k)) for k in slots if not k.startswith("_")}
    if hasattr(value, "__dict__"):
        return {k: plain(v) for k, v in vars(value).items() if not k.startswith("_")}
    return value


def main() -> None:
    with open(sys.argv[1], "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        header = reader.get_header()
        print(json.dumps({"profile": header.profile, "library": header.library}))
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            print(json.dumps({
                "topic": channel.topic,
                "schema": schema.name,
                "encoding": schema.encoding,
                "qos": channel.metadata.get("offered_qos_profiles", ""),
                "log_time": message.log_time,
                "msg": plain(decoded),
            }))


if __name__ == "__main__":
    main()
